/**
 * The grant store on PostgreSQL, beside the catalogue in the same database: the grants every
 * replica on every host must see the same way (secrets, push grants, operations, leases). Each
 * call is one atomic statement or serializable write (postgres-db.ts); expiry is judged by the
 * store's clock, which the driver reads from the caller's `clock` like the others' (tests move it).
 */
import type { GrantStore, PushGrant } from './grants.ts';
import { PostgresDatabase } from './postgres-db.ts';

const text = 'text COLLATE "C"';

const migrations = [
  `CREATE TABLE grant_image_secrets (key ${text} PRIMARY KEY, fingerprint text NOT NULL, expires_at bigint NOT NULL);
   CREATE TABLE grant_push (key ${text} PRIMARY KEY, body text NOT NULL, expires_at bigint NOT NULL);
   CREATE TABLE grant_operations (id ${text} PRIMARY KEY, body text NOT NULL, expires_at bigint NOT NULL);
   CREATE TABLE grant_leases (name ${text} PRIMARY KEY, holder ${text} NOT NULL, expires_at bigint NOT NULL);`,
];

export class PostgresGrantStore implements GrantStore {
  private readonly db: PostgresDatabase;
  private readonly now: () => number;

  private constructor(db: PostgresDatabase, now: () => number) {
    this.db = db;
    this.now = now;
  }

  static async open(url: string, options: { clock?: () => number } = {}): Promise<PostgresGrantStore> {
    return new PostgresGrantStore(await PostgresDatabase.open(url, 'grants', migrations), options.clock ?? Date.now);
  }

  async addImageSecret(key: string, fingerprint: string, expiresAt: number): Promise<void> {
    await this.db.write(async (q) => {
      await q('DELETE FROM grant_image_secrets WHERE expires_at <= ?', [this.now()]);
      await q('INSERT INTO grant_image_secrets (key, fingerprint, expires_at) VALUES (?, ?, ?)', [key, fingerprint, expiresAt]);
    });
  }

  async imageSecretTarget(key: string): Promise<string | undefined> {
    const [row] = await this.db.rows<{ fingerprint: string }>('SELECT fingerprint FROM grant_image_secrets WHERE key = ? AND expires_at > ?', [key, this.now()]);
    return row?.fingerprint;
  }

  async spendImageSecret(key: string): Promise<void> {
    await this.db.write((q) => q('DELETE FROM grant_image_secrets WHERE key = ?', [key]));
  }

  async addPushGrant(key: string, grant: PushGrant, expiresAt: number): Promise<void> {
    await this.db.write(async (q) => {
      await q('DELETE FROM grant_push WHERE expires_at <= ?', [this.now()]);
      await q('INSERT INTO grant_push (key, body, expires_at) VALUES (?, ?, ?)', [key, JSON.stringify(grant), expiresAt]);
    });
  }

  async redeemPushGrant(key: string, fingerprint: string): Promise<PushGrant | undefined> {
    const [row] = await this.db.write((q) =>
      q<{ body: string }>("DELETE FROM grant_push WHERE key = ? AND expires_at > ? AND (body::jsonb ->> 'fingerprint') = ? RETURNING body", [key, this.now(), fingerprint]).then((r) => r.rows),
    );
    return row ? (JSON.parse(row.body) as PushGrant) : undefined;
  }

  async putOperation(id: string, operation: unknown, expiresAt: number): Promise<void> {
    await this.db.write(async (q) => {
      await q('DELETE FROM grant_operations WHERE expires_at <= ?', [this.now()]);
      await q('INSERT INTO grant_operations (id, body, expires_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at', [id, JSON.stringify(operation), expiresAt]);
    });
  }

  async getOperation(id: string): Promise<unknown> {
    const [row] = await this.db.rows<{ body: string }>('SELECT body FROM grant_operations WHERE id = ? AND expires_at > ?', [id, this.now()]);
    return row ? JSON.parse(row.body) : undefined;
  }

  async countOperations(): Promise<number> {
    const [row] = await this.db.rows<{ n: number }>('SELECT count(*) AS n FROM grant_operations WHERE expires_at > ?', [this.now()]);
    return row!.n;
  }

  async takeLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    // One statement: a free, expired or own lease becomes this holder's; another's live one stays.
    const [taken] = await this.db.write((q) =>
      q(
        `INSERT INTO grant_leases (name, holder, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE grant_leases.holder = excluded.holder OR grant_leases.expires_at <= ?
         RETURNING 1`,
        [name, holder, now + ttlMs, now],
      ).then((r) => r.rows),
    );
    return taken !== undefined;
  }

  async renewLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    // Expired but taken by no one is still its own: nobody else can have started the work.
    const renewed = await this.db.write((q) => q('UPDATE grant_leases SET expires_at = ? WHERE name = ? AND holder = ?', [this.now() + ttlMs, name, holder]));
    return renewed.rowCount === 1;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.db.write((q) => q('DELETE FROM grant_leases WHERE name = ? AND holder = ?', [name, holder]));
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
