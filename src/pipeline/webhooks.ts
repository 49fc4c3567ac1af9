/**
 * Sends the pipeline's events to the configured webhooks (domain/webhooks.ts): for each webhook,
 * the events after its cursor in the catalogue's event log (meta `EventLog`), in order, one at a
 * time. The webhook ledger (meta/webhooks.ts) decides who sends: a process claims a webhook for
 * one attempt and settles it with the outcome, so however many processes run, an event goes out
 * once per attempt and the next only after it was delivered or given up on. An event a webhook
 * does not take is passed over without a request.
 *
 * The ledger is written only when there is something to send or a retry is due, so an idle
 * server does not write every second.
 */
import type { EventLog } from '../meta/store.ts';
import type { WebhookLedger } from '../meta/webhooks.ts';
import type { Logger } from '../log.ts';
import { retryDelayMs, webhookBody, webhookSignature, type Webhook } from '../domain/webhooks.ts';
import type { PipelineEvent } from '../domain/pipeline.ts';

/** A claim lives this long: longer than one attempt can take (its timeout), so no one else sends meanwhile. */
const claimSlackMs = 30_000;

export interface DeliveryOutcome {
  delivered: boolean;
  status: number | null;
  error: string;
  durationMs: number;
}

/** One POST of one event: delivered on a 2xx answer; a redirect, another status or no answer is a failure. */
export async function deliver(hook: Webhook, event: PipelineEvent): Promise<DeliveryOutcome> {
  const body = webhookBody(event);
  const started = Date.now();
  try {
    const response = await fetch(hook.url, {
      method: 'POST',
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(hook.timeoutSeconds * 1000),
      headers: {
        'content-type': 'application/json',
        'user-agent': 'wharf-webhook',
        'x-wharf-event': event.type,
        'x-wharf-delivery': String(event.seq),
        'x-wharf-signature-256': webhookSignature(hook.secret, body),
      },
    });
    // The answer's body says nothing wharf acts on: read none of it.
    await response.body?.cancel();
    const delivered = response.status >= 200 && response.status < 300;
    return { delivered, status: response.status, error: delivered ? '' : `HTTP ${response.status}`, durationMs: Date.now() - started };
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    return { delivered: false, status: null, error: `${(err as Error).message}${cause ? `: ${cause}` : ''}`, durationMs: Date.now() - started };
  }
}

export class WebhookDispatcher {
  /** Per webhook: the cursor it was last seen at and when a retry is due, as this process knows. */
  private readonly known = new Map<string, { cursor: number; dueAt: number }>();
  /** Attempts made by this process, per webhook and outcome (for /metrics). */
  readonly counters = new Map<string, Map<string, number>>();
  private last = 0;

  private readonly events: EventLog;
  private readonly ledger: WebhookLedger;
  private readonly hooks: Webhook[];
  private readonly holder: string;
  private readonly log: Logger;

  constructor(events: EventLog, ledger: WebhookLedger, hooks: Webhook[], holder: string, log: Logger) {
    this.events = events;
    this.ledger = ledger;
    this.hooks = hooks;
    this.holder = holder;
    this.log = log;
  }

  /** Where a webhook seen for the first time starts: the log's end when this dispatcher started. */
  private start: number | undefined;

  /** Forgets the state of webhooks no longer configured (their log stays), and notes where new ones start. */
  async begin(): Promise<void> {
    this.start = await this.events.lastEvent();
    const names = new Set(this.hooks.map((h) => h.name));
    for (const state of await this.ledger.states()) if (!names.has(state.name)) await this.ledger.forget(state.name);
  }

  /** One round: each webhook with events waiting (and no retry pending) is sent them until one fails or none is left. */
  async round(): Promise<void> {
    const last = await this.events.lastEvent();
    this.last = last;
    this.start ??= last;
    for (const hook of this.hooks) {
      for (;;) {
        const known = this.known.get(hook.name);
        if (known && (known.dueAt > Date.now() || known.cursor >= last)) break;
        if (!(await this.attempt(hook, last))) break;
      }
    }
  }

  /** Events after each webhook's cursor, as this process last saw them (a webhook it never claimed: not known). */
  backlog(): Map<string, number> {
    const backlog = new Map<string, number>();
    for (const [name, known] of this.known) if (known.cursor >= 0) backlog.set(name, Math.max(0, this.last - known.cursor));
    return backlog;
  }

  /** One claim of `hook`: false when it could not go on (not claimed, or the attempt failed). */
  private async attempt(hook: Webhook, last: number): Promise<boolean> {
    const claim = await this.ledger.claim(hook.name, this.holder, hook.timeoutSeconds * 1000 + claimSlackMs, this.start ?? last);
    if (!claim) {
      // Another process has it, or a retry is not due yet: look again in a while.
      this.known.set(hook.name, { cursor: -1, dueAt: Date.now() + 1000 });
      return false;
    }
    const pending = await this.events.events(claim.cursor, 100);
    const next = pending.find((e) => hook.events.includes(e.type));
    if (!next) {
      const to = pending.at(-1)?.seq ?? claim.cursor;
      await this.ledger.settle(hook.name, this.holder, { advanceTo: to });
      // Nothing after the cursor at all: this webhook is up to date with `last`.
      this.known.set(hook.name, { cursor: pending.length ? to : Math.max(to, last), dueAt: 0 });
      return true;
    }
    const attempt = claim.attempts + 1;
    const at = new Date().toISOString();
    const outcome = await deliver(hook, next);
    const givenUp = !outcome.delivered && attempt >= hook.attempts;
    const delivery = {
      webhook: hook.name,
      event: next.seq,
      type: next.type,
      attempt,
      outcome: outcome.delivered ? 'delivered' : givenUp ? 'gave up' : 'failed',
      status: outcome.status,
      error: outcome.error,
      at,
      durationMs: outcome.durationMs,
    } as const;
    const retry = !outcome.delivered && !givenUp;
    const counts = this.counters.get(hook.name) ?? new Map<string, number>();
    counts.set(delivery.outcome, (counts.get(delivery.outcome) ?? 0) + 1);
    this.counters.set(hook.name, counts);
    const settled = await this.ledger.settle(hook.name, this.holder, retry ? { retryInMs: retryDelayMs(attempt) } : { advanceTo: next.seq }, delivery);
    if (!settled) this.log.warn('a webhook claim expired during its delivery', { webhook: hook.name, event: next.seq });
    if (!outcome.delivered) this.log.warn(givenUp ? 'webhook delivery given up' : 'webhook delivery failed', { webhook: hook.name, event: next.seq, type: next.type, attempt, error: outcome.error });
    this.known.set(hook.name, retry ? { cursor: claim.cursor, dueAt: Date.now() + retryDelayMs(attempt) } : { cursor: next.seq, dueAt: 0 });
    return settled && !retry;
  }
}

/** Runs the dispatcher in the background jobs, a round every `pollMs`, never two at once. */
export function startWebhooks(dispatcher: WebhookDispatcher, log: Logger, options: { pollMs?: number } = {}): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const forgotten = dispatcher.begin().catch((err: unknown) => log.error('forgetting old webhooks failed', { err }));
  const timer = setInterval(() => {
    running ??= forgotten
      .then(() => dispatcher.round())
      .catch((err: unknown) => log.error('sending webhooks failed', { err }))
      .finally(() => (running = undefined));
  }, options.pollMs ?? 500);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
