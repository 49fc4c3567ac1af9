/** The one place that picks concrete drivers for the embedded default: SQLite + files. */
import { ensureDirectory } from './directories.ts';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FsBlobStore } from './blob/fs.ts';
import { SqliteMetaStore } from './meta/sqlite.ts';
import { SqliteGrantStore } from './meta/grants-sqlite.ts';
import type { GrantStore } from './meta/grants.ts';
import { SqliteUsageStore } from './meta/usage-sqlite.ts';
import type { UsageStore } from './meta/usage.ts';
import type { Store } from './core/context.ts';
import type { Config } from './config.ts';
import type { Logger } from './log.ts';
import { releaseNames } from './domain/release-names.ts';

export async function openStore(config: Config, log: Logger): Promise<Store> {
  await ensureDirectory(config.dataDir);
  const blobs = new FsBlobStore(join(config.dataDir, 'blobs'));
  await blobs.init();
  const meta = new SqliteMetaStore(join(config.dataDir, 'wharf.db'));
  return { meta, blobs, log, graceSeconds: config.gracePeriod, releaseNames: releaseNames(config.releaseAliases) };
}

/** The grants every serving process of this data directory shares (secrets, operations). */
export function openGrants(config: Config): GrantStore {
  return new SqliteGrantStore(join(config.dataDir, 'grants.db'));
}

/** Download counts, in their own file so that counting never looks like a catalogue change. */
export function openUsage(config: Config): UsageStore {
  return new SqliteUsageStore(join(config.dataDir, 'usage.db'));
}
