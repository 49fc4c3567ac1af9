/** `wharf cache ...`: the cache of a mirror (`serve --mirror-of`), in the data directory. */
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { FsBlobStore } from '../blob/fs.ts';
import { cacheLocation } from '../cache/location.ts';
import { listCached, purgeCached, verifyCached } from '../cache/maintenance.ts';
import { checkFormat, escapeTerminalControls, humanSize, render } from './output.ts';
import { cliConfig, type CliContext } from './context.ts';

async function openCacheStore(cli: CliContext) {
  const config = await cliConfig(cli);
  const where = cacheLocation(config.dataDir);
  const blobs = new FsBlobStore(where.blobs);
  await blobs.init();
  return { blobs, statePath: where.originIndex };
}

export function cacheCommands(cache: Command, cli: CliContext) {
  cache
    .command('list')
    .alias('ls')
    .description('The files the mirror holds, verified, with the paths the origin gives them')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const { blobs, statePath } = await openCacheStore(cli);
      const files = await listCached(blobs, statePath);
      // One path a line: a line break inside an origin's path is escaped, or it would show as two paths.
      const rows = files.map((f) => [f.paths.map(escapeTerminalControls).join('\n') || '(no longer listed)', f.sha256.slice(0, 12), humanSize(f.size), f.lastUse]);
      cli.io.stdout.write(await render(format, ['PATH', 'SHA256', 'SIZE', 'LAST USE'], rows, files));
    });

  cache
    .command('verify')
    .description('Re-hash every cached file; a damaged one is removed (and fetched again when asked for)')
    .action(async () => {
      const { blobs } = await openCacheStore(cli);
      const { checked, removed } = await verifyCached(blobs, (sha, ok) => cli.io.stdout.write(`${sha}: ${ok ? 'ok' : 'CORRUPT, removed'}\n`));
      if (removed.length) throw new AppError(ErrorCodes.integrity, `${removed.length} of ${checked} cached files were damaged and have been removed`);
    });

  cache
    .command('purge')
    .description('Remove cached files (all of them, or those named by origin path or sha256 prefix)')
    .argument('[files...]')
    .action(async (targets: string[]) => {
      const { blobs, statePath } = await openCacheStore(cli);
      const removed = await purgeCached(blobs, statePath, targets);
      cli.io.stdout.write(`${removed.length} cached file${removed.length === 1 ? '' : 's'} removed\n`);
    });
}
