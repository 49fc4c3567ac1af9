/** What each CLI command needs: the resolved config and an open store, closed when done. */
import { resolve } from 'node:path';
import { loadConfig, defaultDataDir, type Config } from '../config.ts';
import { createLogger, type Logger } from '../log.ts';
import { openStore } from '../factory.ts';
import type { Store } from '../core/context.ts';

export interface GlobalOptions {
  dataDir?: string;
  debug?: boolean;
}

export async function cliConfig(globals: GlobalOptions, flags: Parameters<typeof loadConfig>[1] = {}): Promise<Config> {
  return loadConfig(resolve(globals.dataDir ?? defaultDataDir()), flags);
}

export function cliLogger(globals: GlobalOptions, config?: Config): Logger {
  return createLogger({ level: globals.debug ? 'debug' : config?.logLevel === 'debug' ? 'debug' : 'warn' });
}

export async function withStore<T>(globals: GlobalOptions, fn: (store: Store) => Promise<T>): Promise<T> {
  const config = await cliConfig(globals);
  const store = await openStore(config, cliLogger(globals, config));
  try {
    return await fn(store);
  } finally {
    await store.meta.close();
  }
}
