/** What each CLI command needs: its options and IO, the resolved config and an open store, closed when done. */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { AppError, ErrorCodes } from '../errors.ts';
import { loadConfig, defaultDataDir, type Config } from '../config.ts';
import { createLogger, type Logger } from '../log.ts';
import { openStore, openUsage } from '../factory.ts';
import type { UsageStore } from '../meta/usage.ts';
import type { Store } from '../core/context.ts';
import type { CliIo } from './io.ts';

export interface GlobalOptions {
  dataDir?: string;
  database?: string;
  blobStore?: string;
  s3PathStyle?: boolean;
  debug?: boolean;
}

/** What a command group's actions get: the global options (once parsed) and the IO to use. */
export interface CliContext {
  globals: () => GlobalOptions;
  io: CliIo;
}

export async function cliConfig(cli: CliContext, flags: Parameters<typeof loadConfig>[1] = {}): Promise<Config> {
  const { dataDir, database, blobStore, s3PathStyle } = cli.globals();
  return loadConfig(resolve(dataDir ?? defaultDataDir(cli.io.env)), { database, blobStore, ...(s3PathStyle ? { s3PathStyle: 'true' } : {}), ...flags }, cli.io.env);
}

export function cliLogger(cli: CliContext, config?: Config): Logger {
  const debug = cli.globals().debug || config?.logLevel === 'debug';
  return createLogger({ level: debug ? 'debug' : 'warn', write: (line) => cli.io.stderr.write(line) });
}

/** A file named on the command line (a certificate...), as text; a missing one is a usage mistake. */
export async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new AppError(ErrorCodes.invalidArgument, `Cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export async function withStore<T>(cli: CliContext, fn: (store: Store) => Promise<T>): Promise<T> {
  const config = await cliConfig(cli);
  const store = await openStore(config, cliLogger(cli, config));
  try {
    return await fn(store);
  } finally {
    await store.meta.close();
    await store.blobs.close();
  }
}

/** The download counts (usage statistics) of the data directory. */
export async function withUsage<T>(cli: CliContext, fn: (usage: UsageStore) => Promise<T>): Promise<T> {
  const config = await cliConfig(cli);
  const usage = await openUsage(config, cliLogger(cli, config));
  try {
    return await fn(usage);
  } finally {
    await usage.close();
  }
}
