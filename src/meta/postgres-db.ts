/**
 * What the PostgreSQL drivers (postgres.ts, grants-postgres.ts, usage-postgres.ts) share: a
 * connection pool, numbered migrations per store run under an advisory lock (replicas starting
 * together migrate once), reads, and writes that are one SERIALIZABLE transaction each, retried
 * from the start when PostgreSQL finds it raced another (40001, 40P01): as if the writes of every
 * replica took turns, which is what the contracts' atomic decisions rely on.
 */
import pg from 'pg';
import { AppError, ErrorCodes, isAppError } from '../errors.ts';

/** The advisory lock migrations run under (any number that no other program of the database uses). */
const migrationLock = 0x77686172; // 'whar'

/** Attempts of a write that keeps racing others before it gives up with the last error. */
const writeAttempts = 20;

/** bigint columns (sizes) as numbers: every size a blob store holds is below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser,
};

/** A query on the connection of the transaction it belongs to. */
export type Query = <R extends object = Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<pg.QueryResult<R>>;

/** The database server's clock, in milliseconds since the epoch. */
const databaseNow = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/**
 * A statement whose `{now}` is the store's clock, in milliseconds: the database server's, or a
 * test's `clock` (then a parameter in its place), so that every host judges expiries by one clock.
 */
export function atStoreClock(sql: string, params: unknown[], clock?: () => number): [string, unknown[]] {
  if (!clock) return [sql.replaceAll('{now}', databaseNow), params];
  const ordered: unknown[] = [];
  let next = 0;
  const text = sql.replace(/\?|\{now\}/g, (token) => {
    ordered.push(token === '?' ? params[next++] : clock());
    return token === '?' ? '?' : '?::bigint';
  });
  return [text, ordered];
}

export const pgCode = (err: unknown) => (err as { code?: string }).code ?? '';
const retryable = (err: unknown) => pgCode(err) === '40001' || pgCode(err) === '40P01';

/**
 * What PostgreSQL's failures mean to wharf: a full disk (53100) is `disk_full`, a server that
 * cannot be reached or went away is `unavailable` (replicas keep serving what they published,
 * and refuse writes with it); anything else as it came.
 */
export function databaseError(err: unknown): unknown {
  if (isAppError(err)) return err;
  const code = pgCode(err);
  if (code === '53100') return new AppError(ErrorCodes.diskFull, 'The disk holding the database is full; nothing was changed', { hint: 'Free some space, then try again.', cause: err });
  if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || /ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH|Connection terminated|connect/i.test((err as Error).message ?? '')) {
    return new AppError(ErrorCodes.unavailable, `The database cannot be reached: ${(err as Error).message}`, { cause: err });
  }
  return err;
}

/** `?` placeholders (the SQL shared with sqlite.ts) as PostgreSQL's `$1, $2...`. */
const numbered = (sql: string) => {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
};

export class PostgresDatabase {
  private readonly pool: pg.Pool;
  private readonly url: string;

  private constructor(pool: pg.Pool, url: string) {
    this.pool = pool;
    this.url = url;
  }

  /**
   * Connects to `url` (postgres://...) and brings the schema of `component` up to date with its
   * `migrations` (each a step, numbered by its place), in one transaction under the lock.
   */
  static async open(url: string, component: string, migrations: string[]): Promise<PostgresDatabase> {
    const pool = new pg.Pool({ connectionString: url, types, max: 10 });
    // An idle connection the server dropped is replaced at the next query; the error must not
    // take the process down.
    pool.on('error', () => {});
    const db = new PostgresDatabase(pool, url);
    try {
      if (migrations.length) await db.migrate(component, migrations);
    } catch (err) {
      await pool.end();
      throw databaseError(err);
    }
    return db;
  }

  private async migrate(component: string, migrations: string[]) {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // Replicas starting together: one migrates, the others wait here and find it done.
      await client.query('SELECT pg_advisory_xact_lock($1)', [migrationLock]);
      await client.query('CREATE TABLE IF NOT EXISTS wharf_schema (component text PRIMARY KEY, version integer NOT NULL)');
      const found = await client.query<{ version: number }>('SELECT version FROM wharf_schema WHERE component = $1', [component]);
      let version = found.rows[0]?.version ?? 0;
      if (found.rows.length === 0) await client.query('INSERT INTO wharf_schema (component, version) VALUES ($1, 0)', [component]);
      if (version > migrations.length) throw new AppError(ErrorCodes.config, `The database's ${component} schema (version ${version}) is newer than this wharf knows (${migrations.length}): upgrade wharf`);
      for (; version < migrations.length; version++) {
        await client.query(migrations[version]!);
        await client.query('UPDATE wharf_schema SET version = $1 WHERE component = $2', [version + 1, component]);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /** A read outside any transaction (`?` placeholders). */
  async rows<R extends object>(sql: string, params: unknown[] = []): Promise<R[]> {
    try {
      return (await this.pool.query<R>(numbered(sql), params)).rows;
    } catch (err) {
      throw databaseError(err);
    }
  }

  /**
   * Runs `fn` as one serializable write, retried from the start when it raced another; an
   * AppError `fn` throws rolls it back and is passed on. `after` runs last in the transaction (a
   * change counter that moves with every write).
   */
  async write<T>(fn: (q: Query) => Promise<T>, after?: (q: Query) => Promise<unknown>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        throw databaseError(err);
      }
      try {
        await client.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
        const q: Query = (sql, params) => client.query(numbered(sql), params);
        const result = await fn(q);
        await after?.(q);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        if (retryable(err) && attempt < writeAttempts) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
          continue;
        }
        throw databaseError(err);
      } finally {
        client.release();
      }
    }
  }

  /**
   * Calls `onNotify` for every NOTIFY on `channel`, on a connection of its own kept open (made
   * again after it is lost, with `onNotify` called then too: a notification may have been missed),
   * until the returned function is called.
   */
  listen(channel: string, onNotify: () => void): () => void {
    let stopped = false;
    let client: pg.Client | undefined;
    const connect = async () => {
      while (!stopped) {
        const next = new pg.Client({ connectionString: this.url });
        try {
          await next.connect();
          next.on('notification', () => onNotify());
          next.on('error', () => {});
          next.on('end', () => {
            if (!stopped) setTimeout(() => void connect(), listenRetryMs).unref();
          });
          await next.query(`LISTEN ${channel}`);
          client = next;
          if (stopped) await next.end();
          onNotify();
          return;
        } catch {
          await next.end().catch(() => {});
          await new Promise((resolve) => setTimeout(resolve, listenRetryMs).unref());
        }
      }
    };
    void connect();
    return () => {
      stopped = true;
      void client?.end().catch(() => {});
    };
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

/** How long a lost listening connection waits before it is made again. */
const listenRetryMs = 1_000;
