/** `wharf test IMAGE`: the built-in launch test (src/pipeline/launch-test.ts) on this host's daemon. */
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { resolveImage } from '../core/resolve.ts';
import { launchTest, type LaunchClient } from '../pipeline/launch-test.ts';
import { withStore, type CliContext } from './context.ts';

export function testCommand(command: Command, cli: CliContext) {
  command
    .argument('<image>', 'alias or fingerprint prefix')
    .option('--client <client>', 'incus or lxc (default: the one whose daemon answers)')
    .action(async (ref: string, opts: { client?: string }) => {
      if (opts.client !== undefined && opts.client !== 'incus' && opts.client !== 'lxc') throw new AppError(ErrorCodes.invalidArgument, `--client ${opts.client}: incus or lxc`);
      const cases = await withStore(cli, async (store) => launchTest(store, await resolveImage(store, ref), opts.client as LaunchClient | undefined));
      for (const c of cases) cli.io.stdout.write(`${c.name}: ${c.outcome} (${c.detail})\n`);
      const failed = cases.filter((c) => c.outcome === 'failed');
      if (failed.length) throw new AppError(ErrorCodes.invalidImage, `The image failed its launch test: ${failed.map((c) => c.name).join(', ')}`);
      // Skipped is not passed: a gate must not take it for one.
      if (cases.every((c) => c.outcome === 'skipped')) throw new AppError(ErrorCodes.unavailable, `The launch test could not run here: ${cases.map((c) => c.detail).join('; ')}`);
    });
}
