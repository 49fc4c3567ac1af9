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

/**
 * Opens the database at `path` and runs `prepare` (its schema, its migrations) on it; a file
 * that is damaged or not a database is the catalogue's `store_corrupt`, naming the file.
 */
export function openSqlite(path: string, options: { synchronous: 'FULL' | 'NORMAL'; foreignKeys?: boolean }, prepare: (db: DatabaseSync) => void): DatabaseSync {
  const db = new DatabaseSync(path, { enableForeignKeyConstraints: options.foreignKeys ?? false, timeout: busyTimeoutMs });
  try {
    const deadline = Date.now() + busyTimeoutMs;
    for (;;) {
      try {
        db.exec('PRAGMA journal_mode = WAL');
        break;
      } catch (err) {
        if (!/locked|busy/i.test((err as Error).message) || Date.now() > deadline) throw err;
        // A synchronous wait: this runs once per process, while it opens its store.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, retryMs);
      }
    }
    db.exec(`PRAGMA synchronous = ${options.synchronous}`);
    prepare(db);
    return db;
  } catch (err) {
    db.close();
    throw storageError(err, path);
  }
}

/**
 * Runs `fn` in one write transaction (taken at once, so two processes do not both read and then
 * both try to write). SQLite has already rolled back after some failures (a full disk during
 * COMMIT): a second ROLLBACK would hide the real error behind "no transaction is active".
 */
/**
 * The schema migrations of a file, numbered by their place (`PRAGMA user_version`): those not yet
 * run, in one transaction that reads the version inside it (two processes opening a new file race
 * there, and one runs them).
 */
export function migrator(migrations: string[]): (db: DatabaseSync) => void {
  return (db) => {
    const version = () => (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
    if (version() >= migrations.length) return;
    inTransaction(db, () => {
      for (let v = version(); v < migrations.length; v++) {
        db.exec(migrations[v]!);
        db.exec(`PRAGMA user_version = ${v + 1}`);
      }
    });
  };
}

export function inTransaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = fn();
    db.exec('COMMIT');
    return result;
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw err;
  }
}

/** SQLITE_CORRUPT (11) and SQLITE_NOTADB (26): the file is damaged, or another kind of file. */
const damaged = new Set([11, 26]);

/**
 * SQLite's "disk full" (SQLITE_FULL, 13) and damaged files as the catalogue's errors; anything
 * else as it came. `path` names the file in the message when known.
 */
export function storageError(err: unknown, path?: string): unknown {
  if (isAppError(err)) return err;
  const code = ((err as { errcode?: number }).errcode ?? 0) % 256;
  if (code === 13) return new AppError(ErrorCodes.diskFull, 'The disk holding the database is full; nothing was changed', { hint: 'Free some space, then try again.', cause: err });
  if (damaged.has(code)) {
    return new AppError(ErrorCodes.storeCorrupt, `${path ?? 'A database of the data directory'} is damaged or is not a wharf database (${(err as Error).message})`, {
      hint: 'Restore the data directory from a backup (`wharf backup`, see the README), or move the file away to start it afresh.',
      cause: err,
    });
  }
  return err;
}
