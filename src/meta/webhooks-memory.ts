/**
 * The webhook ledger in memory, for tests: each call reads and writes with no await in between,
 * so it is atomic as the contract asks (webhooks.ts). `share()` gives another handle on the same
 * data, as another process opening the same store would have.
 */
import { defaultDeliveryLimit, toState, type WebhookClaim, type WebhookDelivery, type WebhookLedger, type WebhookSettlement, type WebhookState } from './webhooks.ts';

interface StateRecord {
  cursor: number;
  attempts: number;
  nextAttemptAt: number | null;
  holder: string | null;
  expiresAt: number;
}

interface LedgerData {
  states: Map<string, StateRecord>;
  /** The log in the order written; `written` breaks ties as the SQL drivers' ids do. */
  deliveries: { delivery: WebhookDelivery; written: number }[];
}

/** `deliveries`' order, newest first: by at, event, attempt, then the last written. */
function newestFirst(a: { delivery: WebhookDelivery; written: number }, b: { delivery: WebhookDelivery; written: number }): number {
  const [x, y] = [a.delivery, b.delivery];
  if (x.at !== y.at) return x.at < y.at ? 1 : -1;
  return y.event - x.event || y.attempt - x.attempt || b.written - a.written;
}

export class MemoryWebhookLedger implements WebhookLedger {
  private readonly data: LedgerData;
  private readonly now: () => number;

  constructor(options: { clock?: () => number } = {}, data?: LedgerData) {
    this.now = options.clock ?? Date.now;
    this.data = data ?? { states: new Map(), deliveries: [] };
  }

  /** Another handle on the same data (with the same clock). */
  share(): MemoryWebhookLedger {
    return new MemoryWebhookLedger({ clock: this.now }, this.data);
  }

  async claim(name: string, holder: string, ttlMs: number, start: number): Promise<WebhookClaim | undefined> {
    const now = this.now();
    const state = this.data.states.get(name);
    if (!state) {
      this.data.states.set(name, { cursor: start, attempts: 0, nextAttemptAt: null, holder, expiresAt: now + ttlMs });
      return { cursor: start, attempts: 0 };
    }
    const due = state.nextAttemptAt === null || state.nextAttemptAt <= now;
    const free = state.holder === null || state.holder === holder || state.expiresAt <= now;
    if (!due || !free) return undefined;
    state.holder = holder;
    state.expiresAt = now + ttlMs;
    return { cursor: state.cursor, attempts: state.attempts };
  }

  async settle(name: string, holder: string, result: WebhookSettlement, delivery?: WebhookDelivery): Promise<boolean> {
    const state = this.data.states.get(name);
    if (state?.holder !== holder) return false;
    if ('advanceTo' in result) {
      state.cursor = Math.max(state.cursor, result.advanceTo);
      state.attempts = 0;
      state.nextAttemptAt = null;
    } else {
      state.attempts += 1;
      state.nextAttemptAt = this.now() + result.retryInMs;
    }
    state.holder = null;
    if (delivery) this.data.deliveries.push({ delivery: { ...delivery }, written: this.data.deliveries.length });
    return true;
  }

  async deliveries(name?: string, limit = defaultDeliveryLimit): Promise<WebhookDelivery[]> {
    return this.data.deliveries
      .filter((d) => name === undefined || d.delivery.webhook === name)
      .sort(newestFirst)
      .slice(0, Math.max(0, Math.floor(limit)))
      .map((d) => ({ ...d.delivery }));
  }

  async states(): Promise<WebhookState[]> {
    const now = this.now();
    return [...this.data.states]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, s]) => toState({ name, cursor: s.cursor, attempts: s.attempts, next_attempt_at: s.nextAttemptAt, holder: s.expiresAt > now ? s.holder : null }));
  }

  async forget(name: string): Promise<void> {
    this.data.states.delete(name);
  }

  async close(): Promise<void> {}
}
