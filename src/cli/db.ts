/** `wharf db ...`: the metadata database when it is PostgreSQL (`database`). */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { AppError, ErrorCodes } from '../errors.ts';
import { cliConfig, type CliContext } from './context.ts';

export function dbCommands(db: Command, cli: CliContext) {
  db.command('migrate')
    .description("Copy an embedded store's catalogue and download counts (wharf.db, usage.db) into the PostgreSQL database named by --database")
    .requiredOption('--from <dir>', 'the data directory to copy from')
    .action(async (opts: { from: string }) => {
      const config = await cliConfig(cli);
      if (!config.database) throw new AppError(ErrorCodes.invalidArgument, 'Which PostgreSQL database? None is set', { hint: 'Give --database postgres://... (or WHARF_DATABASE, database in config.yaml).' });
      const { moveToPostgres } = await import('../meta/move-to-postgres.ts');
      const report = await moveToPostgres(resolve(opts.from), config.database);
      cli.io.stdout.write(`Copied ${Object.entries(report.rows).map(([table, n]) => `${n} ${table}`).join(', ')}\n`);
      cli.io.stdout.write(`The files are not copied: point blob_store at ${resolve(opts.from, 'blobs')}, or copy them into the new blob store.\n`);
    });
}
