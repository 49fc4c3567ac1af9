/**
 * Opening an SQLite file that other processes may be opening at the same moment. Switching a new
 * file to WAL takes an exclusive lock and SQLite does not wait for it (the busy timeout does not
 * cover that pragma): two commands started together on a new data directory saw "database is
 * locked". The switch is retried for as long as the busy timeout would have waited.
 */
import { DatabaseSync } from 'node:sqlite';
import { AppError, ErrorCodes, isAppError } from '../errors.ts';

export const busyTimeoutMs = 10_000;
const retryMs = 20;

export function openSqlite(path: string, options: { synchronous: 'FULL' | 'NORMAL'; foreignKeys?: boolean }): DatabaseSync {
  const db = new DatabaseSync(path, { enableForeignKeyConstraints: options.foreignKeys ?? false, timeout: busyTimeoutMs });
  const deadline = Date.now() + busyTimeoutMs;
  for (;;) {
    try {
      db.exec('PRAGMA journal_mode = WAL');
      break;
    } catch (err) {
      if (!/locked|busy/i.test((err as Error).message) || Date.now() > deadline) {
        db.close();
        throw err;
      }
      // A synchronous wait: this runs once per process, while it opens its store.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, retryMs);
    }
  }
  db.exec(`PRAGMA synchronous = ${options.synchronous}`);
  return db;
}

/** SQLite's "disk full" (SQLITE_FULL, 13) as the catalogue's error; anything else as it came. */
export function storageError(err: unknown): unknown {
  if (isAppError(err)) return err;
  const code = ((err as { errcode?: number }).errcode ?? 0) % 256;
  if (code === 13) return new AppError(ErrorCodes.diskFull, 'The disk holding the database is full; nothing was changed', { hint: 'Free some space, then try again.', cause: err });
  return err;
}
