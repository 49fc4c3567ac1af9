/**
 * The webhook ledger on PostgreSQL, beside the catalogue in the same database: the cursors and
 * claims every replica on every host must see the same way, and one log of their deliveries. Each
 * call is one atomic statement or serializable write (postgres-db.ts). Claims and retries are
 * judged by one clock, the database server's (`clock_timestamp()`), whatever the hosts' clocks
 * say: a replica whose clock runs ahead neither takes a live claim nor retries early. Tests pass
 * a `clock` to move time by hand.
 */
import { PostgresDatabase, atStoreClock } from './postgres-db.ts';
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

const text = 'text COLLATE "C"';

const migrations = [
  // Times are milliseconds since the epoch by the store's clock; a free state has no holder.
  `CREATE TABLE webhook_states (
     name ${text} PRIMARY KEY, cursor bigint NOT NULL, attempts integer NOT NULL, next_attempt_at bigint, holder ${text}, expires_at bigint
   );
   CREATE TABLE webhook_deliveries (
     id bigserial PRIMARY KEY, webhook ${text} NOT NULL, event bigint NOT NULL, type text NOT NULL, attempt integer NOT NULL,
     outcome text NOT NULL, status integer, error text NOT NULL, at ${text} NOT NULL, duration_ms double precision NOT NULL
   );
   CREATE INDEX webhook_deliveries_newest ON webhook_deliveries (at, event, attempt, id);
   CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, at, event, attempt, id);`,
];

export class PostgresWebhookLedger implements WebhookLedger {
  private readonly db: PostgresDatabase;
  private readonly clock: (() => number) | undefined;

  private constructor(db: PostgresDatabase, clock: (() => number) | undefined) {
    this.db = db;
    this.clock = clock;
  }

  static async open(url: string, options: { clock?: () => number } = {}): Promise<PostgresWebhookLedger> {
    return new PostgresWebhookLedger(await PostgresDatabase.open(url, 'webhooks', migrations), options.clock);
  }

  private at(sql: string, params: unknown[]): [string, unknown[]] {
    return atStoreClock(sql, params, this.clock);
  }

  async claim(name: string, holder: string, ttlMs: number, start: number): Promise<WebhookClaim | undefined> {
    // One statement: a new name is created held; a due and free (or own) one becomes this holder's.
    const [row] = await this.db.write((q) =>
      q<WebhookClaim>(
        ...this.at(
          `INSERT INTO webhook_states (name, cursor, attempts, next_attempt_at, holder, expires_at) VALUES (?, ?, 0, NULL, ?, {now} + ?)
           ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
           WHERE (webhook_states.next_attempt_at IS NULL OR webhook_states.next_attempt_at <= {now})
             AND (webhook_states.holder IS NULL OR webhook_states.holder = excluded.holder OR webhook_states.expires_at <= {now})
           RETURNING cursor, attempts`,
          [name, start, holder, ttlMs],
        ),
      ).then((r) => r.rows),
    );
    return row && { cursor: row.cursor, attempts: row.attempts };
  }

  async settle(name: string, holder: string, result: WebhookSettlement, delivery?: WebhookDelivery): Promise<boolean> {
    return this.db.write(async (q) => {
      // Expired but taken by no one is still its own: nobody else can have sent anything.
      const ended =
        'advanceTo' in result
          ? await q('UPDATE webhook_states SET cursor = greatest(cursor, ?), attempts = 0, next_attempt_at = NULL, holder = NULL, expires_at = NULL WHERE name = ? AND holder = ?', [result.advanceTo, name, holder])
          : await q(...this.at('UPDATE webhook_states SET attempts = attempts + 1, next_attempt_at = {now} + ?, holder = NULL, expires_at = NULL WHERE name = ? AND holder = ?', [result.retryInMs, name, holder]));
      if (ended.rowCount !== 1) return false;
      if (delivery) await q(deliveryInsert('webhook_deliveries'), deliveryValues(delivery));
      return true;
    });
  }

  async deliveries(name?: string, limit?: number): Promise<WebhookDelivery[]> {
    const { sql, args } = deliverySelect('webhook_deliveries', name, limit);
    return (await this.db.rows<DeliveryRow>(sql, args)).map(toDelivery);
  }

  async states(): Promise<WebhookState[]> {
    const rows = await this.db.rows<StateRow>(
      ...this.at('SELECT name, cursor, attempts, next_attempt_at, CASE WHEN expires_at > {now} THEN holder END AS holder FROM webhook_states ORDER BY name', []),
    );
    return rows.map(toState);
  }

  async forget(name: string): Promise<void> {
    await this.db.write((q) => q('DELETE FROM webhook_states WHERE name = ?', [name]));
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
