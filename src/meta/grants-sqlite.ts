/**
 * The grant store of the embedded default: its own small SQLite file beside the catalogue, so the
 * serving processes share grants without the catalogue's schema carrying expiring rows.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { processAlive } from '../processes.ts';
import { inTransaction, openSqlite } from './sqlite-open.ts';
import type { GrantStore, PushGrant } from './grants.ts';

const schema = `
CREATE TABLE IF NOT EXISTS image_secrets (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, expires_at INTEGER NOT NULL, holder INTEGER);
CREATE TABLE IF NOT EXISTS push_grants (key TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS operations (id TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder INTEGER NOT NULL);
`;

export class SqliteGrantStore implements GrantStore {
  private readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();

  constructor(path: string) {
    // Grants are re-issued by clients after a crash: durability to the last write is not needed.
    this.db = openSqlite(path, { synchronous: 'NORMAL' }, (db) => inTransaction(db, () => db.exec(schema)));
  }

  private sql(text: string): StatementSync {
    let statement = this.statements.get(text);
    if (!statement) this.statements.set(text, (statement = this.db.prepare(text)));
    return statement;
  }

  private expire(table: 'image_secrets' | 'push_grants' | 'operations') {
    this.sql(`DELETE FROM ${table} WHERE expires_at <= ?`).run(Date.now());
  }

  async addImageSecret(key: string, fingerprint: string, expiresAt: number): Promise<void> {
    this.expire('image_secrets');
    this.sql('INSERT INTO image_secrets (key, fingerprint, expires_at) VALUES (?, ?, ?)').run(key, fingerprint, expiresAt);
  }

  async imageSecretTarget(key: string): Promise<string | undefined> {
    const row = this.sql('SELECT fingerprint FROM image_secrets WHERE key = ? AND expires_at > ?').get(key, Date.now()) as { fingerprint: string } | undefined;
    return row?.fingerprint;
  }

  async claimImageSecret(key: string, holder: number): Promise<boolean> {
    const now = Date.now();
    if (this.sql('UPDATE image_secrets SET holder = ? WHERE key = ? AND expires_at > ? AND holder IS NULL').run(holder, key, now).changes === 1) return true;
    const row = this.sql('SELECT holder FROM image_secrets WHERE key = ? AND expires_at > ?').get(key, now) as { holder: number | null } | undefined;
    if (row?.holder == null || processAlive(row.holder)) return false;
    // Compare-and-set on the dead holder: of two processes taking it over, one wins.
    return this.sql('UPDATE image_secrets SET holder = ? WHERE key = ? AND holder = ?').run(holder, key, row.holder).changes === 1;
  }

  async settleImageSecret(key: string, holder: number, completed: boolean): Promise<void> {
    if (completed) this.sql('DELETE FROM image_secrets WHERE key = ? AND holder = ?').run(key, holder);
    else this.sql('UPDATE image_secrets SET holder = NULL WHERE key = ? AND holder = ?').run(key, holder);
  }

  async addPushGrant(key: string, grant: PushGrant, expiresAt: number): Promise<void> {
    this.expire('push_grants');
    this.sql('INSERT INTO push_grants (key, body, expires_at) VALUES (?, ?, ?)').run(key, JSON.stringify(grant), expiresAt);
  }

  async redeemPushGrant(key: string, fingerprint: string): Promise<PushGrant | undefined> {
    const row = this.sql('DELETE FROM push_grants WHERE key = ? AND expires_at > ? AND json_extract(body, \'$.fingerprint\') = ? RETURNING body').get(key, Date.now(), fingerprint) as
      | { body: string }
      | undefined;
    return row ? (JSON.parse(row.body) as PushGrant) : undefined;
  }

  async putOperation(id: string, operation: unknown, expiresAt: number): Promise<void> {
    this.expire('operations');
    this.sql('INSERT OR REPLACE INTO operations (id, body, expires_at) VALUES (?, ?, ?)').run(id, JSON.stringify(operation), expiresAt);
  }

  async getOperation(id: string): Promise<unknown> {
    const row = this.sql('SELECT body FROM operations WHERE id = ? AND expires_at > ?').get(id, Date.now()) as { body: string } | undefined;
    return row ? JSON.parse(row.body) : undefined;
  }

  async countOperations(): Promise<number> {
    return (this.sql('SELECT count(*) AS n FROM operations WHERE expires_at > ?').get(Date.now()) as { n: number }).n;
  }

  async takeLease(name: string, holder: number): Promise<boolean> {
    if (this.sql('INSERT OR IGNORE INTO leases (name, holder) VALUES (?, ?)').run(name, holder).changes === 1) return true;
    const row = this.sql('SELECT holder FROM leases WHERE name = ?').get(name) as { holder: number } | undefined;
    if (!row) return this.takeLease(name, holder);
    if (row.holder === holder || processAlive(row.holder)) return false;
    return this.sql('UPDATE leases SET holder = ? WHERE name = ? AND holder = ?').run(holder, name, row.holder).changes === 1;
  }

  async releaseLease(name: string, holder: number): Promise<void> {
    this.sql('DELETE FROM leases WHERE name = ? AND holder = ?').run(name, holder);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
