/**
 * Where webhook deliveries are kept track of: each configured webhook's cursor in the event log
 * (the catalogue's, ordered by `seq`) and claim, and the log of every attempt to deliver an event.
 * The events go to a webhook in order, one at a time, by whichever serving process claims it;
 * a failed attempt is tried again later. Its own contract (and, in the embedded default, its own
 * SQLite file) for the reason usage.ts gives: every delivery writes, and in the catalogue's
 * database every write would move its change counter and make every serving process render the
 * index again.
 *
 * Drivers: SQLite (`webhooks-sqlite.ts`), memory (`webhooks-memory.ts`) and PostgreSQL
 * (`webhooks-postgres.ts`); test/conformance/webhooks.test.ts runs the contract against each, with
 * handles as processes. Same rules as store.ts: async, each write atomic and isolated across
 * handles, records returned are copies, `disk_full` when the storage is full.
 */

export type DeliveryOutcome = 'delivered' | 'failed' | 'gave up';

/** One attempt to deliver one event to one webhook. */
export interface WebhookDelivery {
  /** The webhook's name. */
  webhook: string;
  /** The event's `seq`. */
  event: number;
  /** The event's type, e.g. image.promoted. */
  type: string;
  /** 1 for the first attempt at this event. */
  attempt: number;
  outcome: DeliveryOutcome;
  /** The receiver's HTTP status; null when there was no answer. */
  status: number | null;
  /** '' or why it failed. */
  error: string;
  /**
   * When the attempt started, ISO 8601 in UTC (`toISOString()`): the caller's value, stored as
   * given, and the log is ordered by it as text, so one format for all.
   */
  at: string;
  durationMs: number;
}

/** What a claim hands its holder: where the webhook stands. */
export interface WebhookClaim {
  /** The seq of the last event handled (delivered or given up on): the next to send is after it. */
  cursor: number;
  /** Failed attempts at the next event so far (0 when none). */
  attempts: number;
}

/** A webhook's state as kept, for status pages and the CLI. */
export interface WebhookState {
  name: string;
  cursor: number;
  attempts: number;
  /** When a retry is due (ISO 8601, by the store's clock); null when none is pending. */
  nextAttemptAt: string | null;
  /** Who holds a live claim on it; null when free (never claimed, settled, or its claim expired). */
  holder: string | null;
}

/**
 * What a settle does besides ending the claim: the event was handled (delivered, or given up on),
 * so the cursor moves on; or the attempt failed, and the same event is tried again later.
 */
export type WebhookSettlement = { advanceTo: number } | { retryInMs: number };

/**
 * Claims are leases as in grants.ts: a holder is an instance id (src/instance.ts), a claim lives
 * `ttlMs` from when it was taken, by the store's clock (on several hosts the callers' clocks
 * differ; the store's is one), and a holder that dies leaves a claim that is free again once
 * expired. Each call is one atomic decision across every handle on the store.
 */
export interface WebhookLedger {
  /**
   * Takes webhook `name` for `holder` for `ttlMs` when it is due (no retry pending, or its time
   * has come) and free (held by no one, its claim expired, or already this holder's: then
   * renewed). The first claim of a name creates its state with cursor `start` (the caller passes
   * the event log's end: a new webhook is sent what happens from then on, not the whole history);
   * later claims ignore `start`. undefined when not due, or held by another.
   */
  claim(name: string, holder: string, ttlMs: number, start: number): Promise<WebhookClaim | undefined>;
  /**
   * Ends `holder`'s claim, in one write with appending `delivery` (when given) to the log:
   * `{ advanceTo }` moves the cursor there (never backwards) and resets the attempts;
   * `{ retryInMs }` counts one more failed attempt and makes the webhook due that long from now,
   * by the store's clock. false, and nothing written, when the claim is not this holder's any
   * more (expired and taken by another, settled already, or the webhook forgotten): what it sent
   * is another holder's to account for. Expired but taken by no one, the claim is still its own.
   */
  settle(name: string, holder: string, result: WebhookSettlement, delivery?: WebhookDelivery): Promise<boolean>;
  /**
   * The log, newest first (by `at`, then event, then attempt, descending; then the order they
   * were written, last first), of webhook `name` or of all, at most `limit` of them.
   */
  deliveries(name?: string, limit?: number): Promise<WebhookDelivery[]>;
  /** Every webhook's state, by name. */
  states(): Promise<WebhookState[]>;
  /**
   * Forgets a webhook no longer configured: its state goes (configured again, it starts afresh
   * from the event log's end), its deliveries stay in the log.
   */
  forget(name: string): Promise<void>;
  close(): Promise<void>;
}

/** How many deliveries `deliveries` returns when not told. */
export const defaultDeliveryLimit = 100;

/** A limit as the SQL drivers pass it: a whole number, never negative (SQLite reads -1 as "all"). */
export const deliveryLimit = (limit: number | undefined) => Math.max(0, Math.floor(limit ?? defaultDeliveryLimit));

/** A delivery as the SQL drivers keep it. */
export interface DeliveryRow {
  webhook: string;
  event: number;
  type: string;
  attempt: number;
  outcome: string;
  status: number | null;
  error: string;
  at: string;
  duration_ms: number;
}

/** The SQL drivers' selection of the log for `deliveries` (`?` placeholders); `id` is the order written. */
export function deliverySelect(table: string, name: string | undefined, limit: number | undefined): { sql: string; args: unknown[] } {
  const where = name === undefined ? '' : ' WHERE webhook = ?';
  const args: unknown[] = name === undefined ? [] : [name];
  return {
    sql: `SELECT webhook, event, type, attempt, outcome, status, error, at, duration_ms FROM ${table}${where} ORDER BY at DESC, event DESC, attempt DESC, id DESC LIMIT ?`,
    args: [...args, deliveryLimit(limit)],
  };
}

/** The columns of a delivery written to the log, in `deliveryInsert`'s order. */
export const deliveryValues = (d: WebhookDelivery) => [d.webhook, d.event, d.type, d.attempt, d.outcome, d.status, d.error, d.at, d.durationMs];

export const deliveryInsert = (table: string) => `INSERT INTO ${table} (webhook, event, type, attempt, outcome, status, error, at, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`;

export function toDelivery(row: DeliveryRow): WebhookDelivery {
  return {
    webhook: row.webhook,
    event: row.event,
    type: row.type,
    attempt: row.attempt,
    outcome: row.outcome as DeliveryOutcome,
    status: row.status,
    error: row.error,
    at: row.at,
    durationMs: row.duration_ms,
  };
}

/** A state as the SQL drivers keep it: times in milliseconds since the epoch, by the store's clock. */
export interface StateRow {
  name: string;
  cursor: number;
  attempts: number;
  next_attempt_at: number | null;
  /** The holder of a live claim only: the drivers' selections leave out an expired one's. */
  holder: string | null;
}

export function toState(row: StateRow): WebhookState {
  return {
    name: row.name,
    cursor: row.cursor,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at === null ? null : new Date(row.next_attempt_at).toISOString(),
    holder: row.holder,
  };
}
