/**
 * The webhook ledger of the embedded default: DATA/webhooks.db, beside (never inside) wharf.db.
 * Every claim and every delivery writes; in wharf.db each write would move the catalogue's change
 * counter and make every serving process render the index again (the reason usage.db is apart too).
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { inTransaction, migrator, openSqlite, storageError } from './sqlite-open.ts';
import {
  deliveryInsert,
  deliverySelect,
  deliveryValues,
  toDelivery,
  toState,
  type DeliveryRow,
  type StateRow,
  type WebhookClaim,
  type WebhookDelivery,
  type WebhookLedger,
  type WebhookSettlement,
  type WebhookState,
} from './webhooks.ts';

/** Numbered by their place (`PRAGMA user_version`); a file is never dropped: its log is a record. */
const migrations: string[] = [
  // Times are milliseconds since the epoch by the store's clock; a free state has no holder.
  `CREATE TABLE states (
     name TEXT PRIMARY KEY,
     cursor INTEGER NOT NULL,
     attempts INTEGER NOT NULL,
     next_attempt_at INTEGER,
     holder TEXT,
     expires_at INTEGER
   );
   CREATE TABLE deliveries (
     id INTEGER PRIMARY KEY,
     webhook TEXT NOT NULL,
     event INTEGER NOT NULL,
     type TEXT NOT NULL,
     attempt INTEGER NOT NULL,
     outcome TEXT NOT NULL,
     status INTEGER,
     error TEXT NOT NULL,
     at TEXT NOT NULL,
     duration_ms REAL NOT NULL
   );
   CREATE INDEX deliveries_newest ON deliveries (at, event, attempt, id);
   CREATE INDEX deliveries_by_webhook ON deliveries (webhook, at, event, attempt, id);`,
];

const migrate = migrator(migrations);

export class SqliteWebhookLedger implements WebhookLedger {
  private readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();
  /** The store's clock: claims and retries are judged by it (the host's, for a file of this host). */
  private readonly now: () => number;

  constructor(path: string, options: { clock?: () => number } = {}) {
    this.now = options.clock ?? Date.now;
    // Durable to the last write, as the catalogue: the log is the operator's record of what was
    // sent, and the writes are few (a claim and a settle per attempt, a claim per idle poll).
    this.db = openSqlite(path, { synchronous: 'FULL' }, migrate);
  }

  private sql(text: string): StatementSync {
    let statement = this.statements.get(text);
    if (!statement) this.statements.set(text, (statement = this.db.prepare(text)));
    return statement;
  }

  async claim(name: string, holder: string, ttlMs: number, start: number): Promise<WebhookClaim | undefined> {
    const now = this.now();
    // One statement: a new name is created held; a due and free (or own) one becomes this holder's.
    try {
      const row = this.sql(
        `INSERT INTO states (name, cursor, attempts, next_attempt_at, holder, expires_at) VALUES (?, ?, 0, NULL, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE (states.next_attempt_at IS NULL OR states.next_attempt_at <= ?)
           AND (states.holder IS NULL OR states.holder = excluded.holder OR states.expires_at <= ?)
         RETURNING cursor, attempts`,
      ).get(name, start, holder, now + ttlMs, now, now) as WebhookClaim | undefined;
      return row && { cursor: row.cursor, attempts: row.attempts };
    } catch (err) {
      throw storageError(err);
    }
  }

  async settle(name: string, holder: string, result: WebhookSettlement, delivery?: WebhookDelivery): Promise<boolean> {
    try {
      return inTransaction(this.db, () => {
        // Expired but taken by no one is still its own: nobody else can have sent anything.
        const ended =
          'advanceTo' in result
            ? this.sql('UPDATE states SET cursor = max(cursor, ?), attempts = 0, next_attempt_at = NULL, holder = NULL, expires_at = NULL WHERE name = ? AND holder = ?').run(result.advanceTo, name, holder)
            : this.sql('UPDATE states SET attempts = attempts + 1, next_attempt_at = ?, holder = NULL, expires_at = NULL WHERE name = ? AND holder = ?').run(this.now() + result.retryInMs, name, holder);
        if (ended.changes !== 1) return false;
        if (delivery) this.sql(deliveryInsert('deliveries')).run(...(deliveryValues(delivery) as (string | number | null)[]));
        return true;
      });
    } catch (err) {
      throw storageError(err);
    }
  }

  async deliveries(name?: string, limit?: number): Promise<WebhookDelivery[]> {
    const { sql, args } = deliverySelect('deliveries', name, limit);
    return (this.sql(sql).all(...(args as (string | number)[])) as unknown as DeliveryRow[]).map(toDelivery);
  }

  async states(): Promise<WebhookState[]> {
    const rows = this.sql('SELECT name, cursor, attempts, next_attempt_at, CASE WHEN expires_at > ? THEN holder END AS holder FROM states ORDER BY name').all(this.now()) as unknown as StateRow[];
    return rows.map(toState);
  }

  async forget(name: string): Promise<void> {
    try {
      this.sql('DELETE FROM states WHERE name = ?').run(name);
    } catch (err) {
      throw storageError(err);
    }
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
