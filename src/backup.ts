/**
 * `wharf backup DIR`: a consistent copy of what a data directory cannot rebuild, taken while the
 * server runs. The databases go through SQLite's online backup (a snapshot as of one moment,
 * whoever writes meanwhile); the blobs are not copied but listed, since they are immutable files
 * named by their sha256 that any file copy (rsync, a snapshot) can take after the fact. Keys and
 * settings are copied as they are. Grants (secrets, operations) are short-lived and left out.
 */
import { backup, DatabaseSync } from 'node:sqlite';
import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { FsBlobStore } from './blob/fs.ts';
import { SqliteMetaStore } from './meta/sqlite.ts';
import { AppError, ErrorCodes } from './errors.ts';
import type { Config } from './config.ts';
import { configFileName } from './config.ts';

export interface BackupResult {
  files: string[];
  blobs: number;
  bytes: number;
}

const databases = ['wharf.db', 'usage.db', 'webhooks.db'];
const plainFiles = [configFileName, 'server.crt', 'server.key', 'signing-key.asc'];
export const blobListName = 'blobs.txt';

export async function backupDataDir(config: Config, dest: string): Promise<BackupResult> {
  if (config.database || config.blobStore?.startsWith('s3://')) {
    throw new AppError(ErrorCodes.invalidArgument, 'wharf backup copies the embedded store (SQLite and files in the data directory)', {
      hint: 'With database or an s3:// blob_store, back them up with their own tools (pg_dump, the object store\'s replication or versioning).',
    });
  }
  if (!existsSync(join(config.dataDir, 'wharf.db'))) throw new AppError(ErrorCodes.invalidArgument, `${config.dataDir} holds no wharf store`);
  await mkdir(dest, { recursive: true, mode: 0o700 });
  if ((await readdir(dest)).length) throw new AppError(ErrorCodes.conflict, `${dest} is not empty`, { hint: 'Back up into a new or empty directory.' });
  const files: string[] = [];
  for (const name of databases) {
    const source = join(config.dataDir, name);
    if (!existsSync(source)) continue;
    const db = new DatabaseSync(source, { readOnly: true, timeout: 10_000 });
    try {
      await backup(db, join(dest, name));
    } finally {
      db.close();
    }
    files.push(name);
  }
  for (const name of plainFiles) {
    const source = join(config.dataDir, name);
    if (!existsSync(source)) continue;
    await copyFile(source, join(dest, name));
    files.push(name);
  }
  // The blobs the copied catalogue refers to, from the copy itself: consistent with it.
  const copy = new SqliteMetaStore(join(dest, 'wharf.db'));
  const blobs = new Map<string, number>();
  try {
    for (const image of await copy.listImages()) for (const blob of [image.metadata, ...(image.rootfs ? [image.rootfs] : []), ...image.deltas]) blobs.set(blob.sha256, blob.size);
    // And what the registry holds: its blobs and manifests.
    for (const blob of await copy.ownedBlobs()) blobs.set(blob.sha256, blob.size);
  } finally {
    await copy.close();
  }
  // Where the file store keeps each one, relative to the data directory.
  const store = new FsBlobStore(config.blobStore ?? join(config.dataDir, 'blobs'));
  const lines = [...blobs].sort(([a], [b]) => (a < b ? -1 : 1)).map(([sha, size]) => `${sha} ${size} ${relative(config.dataDir, store.pathOf(sha))}\n`);
  await writeFile(join(dest, blobListName), lines.join(''));
  files.push(blobListName);
  return { files, blobs: blobs.size, bytes: [...blobs.values()].reduce((a, b) => a + b, 0) };
}
