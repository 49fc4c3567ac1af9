/**
 * The grant store on PostgreSQL, beside the catalogue in the same database: the grants every
 * replica on every host must see the same way (secrets, push grants, operations, leases). Each
 * call is one atomic statement or serializable write (postgres-db.ts). Expiry is judged by one
 * clock, the database server's (`clock_timestamp()`), whatever the hosts' clocks say: a replica
 * whose clock runs ahead cannot take a lease early. Tests pass a `clock` to move time by hand.
 */
import type { GrantStore, PushGrant } from './grants.ts';
import { PostgresDatabase, atStoreClock } from './postgres-db.ts';

const text = 'text COLLATE "C"';

const migrations = [
  `CREATE TABLE grant_image_secrets (key ${text} PRIMARY KEY, fingerprint text NOT NULL, expires_at bigint NOT NULL);
   CREATE TABLE grant_push (key ${text} PRIMARY KEY, body text NOT NULL, expires_at bigint NOT NULL);
   CREATE TABLE grant_operations (id ${text} PRIMARY KEY, body text NOT NULL, expires_at bigint NOT NULL);
   CREATE TABLE grant_leases (name ${text} PRIMARY KEY, holder ${text} NOT NULL, expires_at bigint NOT NULL);`,
];

export class PostgresGrantStore implements GrantStore {
  private readonly db: PostgresDatabase;
  private readonly clock: (() => number) | undefined;

  private constructor(db: PostgresDatabase, clock: (() => number) | undefined) {
    this.db = db;
    this.clock = clock;
  }

  static async open(url: string, options: { clock?: () => number } = {}): Promise<PostgresGrantStore> {
    return new PostgresGrantStore(await PostgresDatabase.open(url, 'grants', migrations), options.clock);
  }

  private at(sql: string, params: unknown[]): [string, unknown[]] {
    return atStoreClock(sql, params, this.clock);
  }

  async addImageSecret(key: string, fingerprint: string, ttlMs: number): Promise<void> {
    await this.db.write(async (q) => {
      await q(...this.at('DELETE FROM grant_image_secrets WHERE expires_at <= {now}', []));
      await q(...this.at('INSERT INTO grant_image_secrets (key, fingerprint, expires_at) VALUES (?, ?, {now} + ?)', [key, fingerprint, ttlMs]));
    });
  }

  async imageSecretTarget(key: string): Promise<string | undefined> {
    const [row] = await this.db.rows<{ fingerprint: string }>(...this.at('SELECT fingerprint FROM grant_image_secrets WHERE key = ? AND expires_at > {now}', [key]));
    return row?.fingerprint;
  }

  async spendImageSecret(key: string): Promise<void> {
    await this.db.write((q) => q('DELETE FROM grant_image_secrets WHERE key = ?', [key]));
  }

  async addPushGrant(key: string, grant: PushGrant, ttlMs: number): Promise<void> {
    await this.db.write(async (q) => {
      await q(...this.at('DELETE FROM grant_push WHERE expires_at <= {now}', []));
      await q(...this.at('INSERT INTO grant_push (key, body, expires_at) VALUES (?, ?, {now} + ?)', [key, JSON.stringify(grant), ttlMs]));
    });
  }

  async redeemPushGrant(key: string, fingerprint: string): Promise<PushGrant | undefined> {
    const [row] = await this.db.write((q) =>
      q<{ body: string }>(...this.at("DELETE FROM grant_push WHERE key = ? AND expires_at > {now} AND (body::jsonb ->> 'fingerprint') = ? RETURNING body", [key, fingerprint])).then((r) => r.rows),
    );
    return row ? (JSON.parse(row.body) as PushGrant) : undefined;
  }

  async putOperation(id: string, operation: unknown, ttlMs: number): Promise<void> {
    await this.db.write(async (q) => {
      await q(...this.at('DELETE FROM grant_operations WHERE expires_at <= {now}', []));
      await q(...this.at('INSERT INTO grant_operations (id, body, expires_at) VALUES (?, ?, {now} + ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at', [id, JSON.stringify(operation), ttlMs]));
    });
  }

  async getOperation(id: string): Promise<unknown> {
    const [row] = await this.db.rows<{ body: string }>(...this.at('SELECT body FROM grant_operations WHERE id = ? AND expires_at > {now}', [id]));
    return row ? JSON.parse(row.body) : undefined;
  }

  async countOperations(): Promise<number> {
    const [row] = await this.db.rows<{ n: number }>(...this.at('SELECT count(*) AS n FROM grant_operations WHERE expires_at > {now}', []));
    return row!.n;
  }

  async takeLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    // One statement: a free, expired or own lease becomes this holder's; another's live one stays.
    const [taken] = await this.db.write((q) =>
      q(
        ...this.at(
          `INSERT INTO grant_leases (name, holder, expires_at) VALUES (?, ?, {now} + ?)
           ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
           WHERE grant_leases.holder = excluded.holder OR grant_leases.expires_at <= {now}
           RETURNING 1`,
          [name, holder, ttlMs],
        ),
      ).then((r) => r.rows),
    );
    return taken !== undefined;
  }

  async renewLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    // Expired but taken by no one is still its own: nobody else can have started the work.
    const renewed = await this.db.write((q) => q(...this.at('UPDATE grant_leases SET expires_at = {now} + ? WHERE name = ? AND holder = ?', [ttlMs, name, holder])));
    return renewed.rowCount === 1;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.db.write((q) => q('DELETE FROM grant_leases WHERE name = ? AND holder = ?', [name, holder]));
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
