/**
 * The grant store of the embedded default: its own small SQLite file beside the catalogue, so the
 * serving processes share grants without the catalogue's schema carrying expiring rows.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { inTransaction, openSqlite } from './sqlite-open.ts';
import type { GrantStore, PushGrant } from './grants.ts';

/**
 * The schema's version (`PRAGMA user_version`). An older file is dropped and made anew: every row
 * in it expires within the hour, and a lost grant costs a client a retry (grants.ts).
 */
const version = 2;
const schema = `
DROP TABLE IF EXISTS image_secrets;
DROP TABLE IF EXISTS push_grants;
DROP TABLE IF EXISTS operations;
DROP TABLE IF EXISTS leases;
CREATE TABLE image_secrets (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE push_grants (key TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE operations (id TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL);
PRAGMA user_version = ${version};
`;

export class SqliteGrantStore implements GrantStore {
  private readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();
  /** The store's clock: every expiry is judged by it (the host's, for a file of this host). */
  private readonly now: () => number;

  constructor(path: string, options: { clock?: () => number } = {}) {
    this.now = options.clock ?? Date.now;
    // Grants are re-issued by clients after a crash: durability to the last write is not needed.
    this.db = openSqlite(path, { synchronous: 'NORMAL' }, (db) =>
      inTransaction(db, () => {
        const { user_version: current } = db.prepare('PRAGMA user_version').get() as { user_version: number };
        if (current !== version) db.exec(schema);
      }),
    );
  }

  private sql(text: string): StatementSync {
    let statement = this.statements.get(text);
    if (!statement) this.statements.set(text, (statement = this.db.prepare(text)));
    return statement;
  }

  private expire(table: 'image_secrets' | 'push_grants' | 'operations') {
    this.sql(`DELETE FROM ${table} WHERE expires_at <= ?`).run(this.now());
  }

  async addImageSecret(key: string, fingerprint: string, ttlMs: number): Promise<void> {
    this.expire('image_secrets');
    this.sql('INSERT INTO image_secrets (key, fingerprint, expires_at) VALUES (?, ?, ?)').run(key, fingerprint, this.now() + ttlMs);
  }

  async imageSecretTarget(key: string): Promise<string | undefined> {
    const row = this.sql('SELECT fingerprint FROM image_secrets WHERE key = ? AND expires_at > ?').get(key, this.now()) as { fingerprint: string } | undefined;
    return row?.fingerprint;
  }

  async spendImageSecret(key: string): Promise<void> {
    this.sql('DELETE FROM image_secrets WHERE key = ?').run(key);
  }

  async addPushGrant(key: string, grant: PushGrant, ttlMs: number): Promise<void> {
    this.expire('push_grants');
    this.sql('INSERT INTO push_grants (key, body, expires_at) VALUES (?, ?, ?)').run(key, JSON.stringify(grant), this.now() + ttlMs);
  }

  async redeemPushGrant(key: string, fingerprint: string): Promise<PushGrant | undefined> {
    const row = this.sql('DELETE FROM push_grants WHERE key = ? AND expires_at > ? AND json_extract(body, \'$.fingerprint\') = ? RETURNING body').get(key, this.now(), fingerprint) as
      | { body: string }
      | undefined;
    return row ? (JSON.parse(row.body) as PushGrant) : undefined;
  }

  async putOperation(id: string, operation: unknown, ttlMs: number): Promise<void> {
    this.expire('operations');
    this.sql('INSERT OR REPLACE INTO operations (id, body, expires_at) VALUES (?, ?, ?)').run(id, JSON.stringify(operation), this.now() + ttlMs);
  }

  async getOperation(id: string): Promise<unknown> {
    const row = this.sql('SELECT body FROM operations WHERE id = ? AND expires_at > ?').get(id, this.now()) as { body: string } | undefined;
    return row ? JSON.parse(row.body) : undefined;
  }

  async countOperations(): Promise<number> {
    return (this.sql('SELECT count(*) AS n FROM operations WHERE expires_at > ?').get(this.now()) as { n: number }).n;
  }

  async takeLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    // One statement: a free, expired or own lease becomes this holder's; another's live one stays.
    const taken = this.sql(
      `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE leases.holder = excluded.holder OR leases.expires_at <= ?`,
    ).run(name, holder, now + ttlMs, now);
    return taken.changes === 1;
  }

  async renewLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    // Expired but taken by no one is still its own: nobody else can have started the work.
    return this.sql('UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?').run(this.now() + ttlMs, name, holder).changes === 1;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    this.sql('DELETE FROM leases WHERE name = ? AND holder = ?').run(name, holder);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
