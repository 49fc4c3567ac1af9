/** The one place that picks concrete drivers: SQLite + files (the embedded default), or PostgreSQL. */
import { Blobs } from './blob/store.ts';
import { s3Location } from './blob/s3-location.ts';
import { ensureDirectory } from './directories.ts';
import { constants, renameSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { AppError, ErrorCodes, isAppError } from './errors.ts';
import { FsBlobStore } from './blob/fs.ts';
import { SqliteMetaStore } from './meta/sqlite.ts';
import { SqliteGrantStore } from './meta/grants-sqlite.ts';
import type { GrantStore } from './meta/grants.ts';
import { SqliteUsageStore } from './meta/usage-sqlite.ts';
import type { UsageStore } from './meta/usage.ts';
import { SqliteWebhookLedger } from './meta/webhooks-sqlite.ts';
import type { WebhookLedger } from './meta/webhooks.ts';
import type { Store } from './core/context.ts';
import type { Config } from './config.ts';
import type { Logger } from './log.ts';
import { releaseNames } from './domain/release-names.ts';

/**
 * The store a configuration names: the catalogue in PostgreSQL (`database`) or in the data
 * directory's SQLite file, the blobs in `blob_store` or the data directory. Its blobs are the
 * `Blobs` wrapper, whose timings /metrics reads.
 */
export async function openStore(config: Config, log: Logger): Promise<Store & { blobs: Blobs }> {
  await openDataDirectory(config.dataDir);
  const blobs = await openBlobs(config);
  // PostgreSQL's client is loaded only by those who use it: most commands start faster without.
  const meta = config.database ? await (await import('./meta/postgres.ts')).PostgresMetaStore.open(config.database) : new SqliteMetaStore(join(config.dataDir, 'wharf.db'));
  return { meta, blobs, log, graceSeconds: config.gracePeriod, releaseNames: releaseNames(config.releaseAliases) };
}

/** The blob store `blob_store` names: s3://BUCKET[/PREFIX], a directory, or DATA/blobs. */
async function openBlobs(config: Config): Promise<Blobs> {
  const location = config.blobStore?.startsWith('s3://') ? s3Location(config.blobStore) : undefined;
  if (config.blobStore?.startsWith('s3://') && !location) throw new AppError(ErrorCodes.config, `blob_store: ${config.blobStore} is not an s3://BUCKET[/PREFIX] URL`);
  if (location) {
    // The SDK is loaded only by those who use it.
    const { S3BlobDriver } = await import('./blob/s3.ts');
    const driver = new S3BlobDriver(location, { pathStyle: config.s3PathStyle, redirectEndpoint: config.blobRedirectEndpoint });
    await driver.init();
    return new Blobs(driver);
  }
  const blobs = new FsBlobStore(config.blobStore ?? join(config.dataDir, 'blobs'));
  await blobs.init();
  return blobs;
}

const dataDirectoryReasons: Record<string, string> = {
  EACCES: 'this user may not write there',
  EPERM: 'this user may not write there',
  EROFS: 'its file system is read-only',
  ENOTDIR: 'a file is in the way',
};

/**
 * The data directory, made if missing and checked writable: what goes wrong there is the
 * operator's setting (`config`, exit 78), said in words, not an errno from deep inside a store.
 */
export async function openDataDirectory(dir: string): Promise<void> {
  try {
    await ensureDirectory(dir);
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    const why = dataDirectoryReasons[(err as NodeJS.ErrnoException).code ?? ''] ?? (err as Error).message;
    throw new AppError(ErrorCodes.config, `Cannot use ${dir} as the data directory: ${why}`, {
      hint: 'Choose another with --data-dir or WHARF_DATA_DIR.',
      cause: err,
    });
  }
}

/** The grants every serving process shares (secrets, operations, leases): in PostgreSQL, every replica's. */
export async function openGrants(config: Config, log: Logger): Promise<GrantStore> {
  if (config.database) return (await import('./meta/grants-postgres.ts')).PostgresGrantStore.open(config.database);
  return openAuxiliary(join(config.dataDir, 'grants.db'), (path) => new SqliteGrantStore(path), log);
}

/** Download counts, apart from the catalogue so that counting never looks like a catalogue change. */
export async function openUsage(config: Config, log: Logger): Promise<UsageStore> {
  if (config.database) return (await import('./meta/usage-postgres.ts')).PostgresUsageStore.open(config.database);
  return openAuxiliary(join(config.dataDir, 'usage.db'), (path) => new SqliteUsageStore(path), log);
}

/**
 * The webhooks' cursors, claims and delivery log, apart from the catalogue so that a delivery
 * never looks like a catalogue change. Not `openAuxiliary`: the log is the record of what was sent
 * and the cursors say what is still to send; a damaged webhooks.db is an error (`store_corrupt`)
 * to look into, not a file to start afresh (a fresh one would skip every event not yet sent).
 * `log` is taken as openUsage and openGrants take it, though nothing is logged when opening.
 */
export async function openWebhooks(config: Config, log: Logger): Promise<WebhookLedger> {
  if (config.database) return (await import('./meta/webhooks-postgres.ts')).PostgresWebhookLedger.open(config.database);
  return new SqliteWebhookLedger(join(config.dataDir, 'webhooks.db'));
}

/**
 * Opens a database that serving can do without (download counts; secrets and operations, which
 * clients ask for again): a damaged one is moved aside, kept for a look, and started afresh,
 * so that it never stops the server from serving images. wharf.db has no such way out: a
 * damaged catalogue is an error (`store_corrupt`) until it is restored.
 */
function openAuxiliary<T>(path: string, open: (path: string) => T, log: Logger): T {
  try {
    return open(path);
  } catch (err) {
    if (!isAppError(err, ErrorCodes.storeCorrupt)) throw err;
    const aside = `${path}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    // The write-ahead log and its index belong to the damaged file: they go with it.
    for (const suffix of ['', '-wal', '-shm']) {
      try {
        renameSync(path + suffix, aside + suffix);
      } catch (renameErr) {
        if ((renameErr as NodeJS.ErrnoException).code !== 'ENOENT') throw renameErr;
      }
    }
    log.warn(`${basename(path)} was damaged: moved aside to ${aside}, started afresh`, { reason: (err as Error).message });
    return open(path);
  }
}
