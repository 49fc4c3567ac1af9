/** argv -> command. Errors become a message, a hint and exit status 1; stacks only with --debug. */
import { Command, CommanderError } from 'commander';
import { isAppError } from '../errors.ts';
import { imageCommands } from './image.ts';
import { serveCommand } from './serve.ts';
import { trustCommands } from './trust.ts';
import { remoteCommands } from './remote.ts';
import { mirrorCommands, pruneCommand, treeCommands } from './mirror.ts';
import type { GlobalOptions } from './context.ts';

export async function runCli(argv: string[]): Promise<number> {
  const program = new Command('wharf')
    .description('A self-hostable image server for LXD and Incus')
    .option('--data-dir <dir>', 'data directory (env WHARF_DATA_DIR, default ./wharf-data)')
    .option('--debug', 'verbose logs and stack traces')
    .showHelpAfterError()
    .exitOverride();
  const globals = () => program.opts<GlobalOptions>();
  const image = imageCommands(program, globals);
  serveCommand(program, globals);
  trustCommands(program, globals);
  remoteCommands(program, image, globals);
  mirrorCommands(program, globals);
  treeCommands(program, globals);
  pruneCommand(program, globals);
  program.commands.forEach(function override(c: Command) {
    c.exitOverride();
    c.commands.forEach(override);
  });

  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    process.stderr.write(`Error: ${(err as Error).message}\n`);
    if (isAppError(err) && err.hint) process.stderr.write(`${err.hint}\n`);
    if (globals().debug && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
