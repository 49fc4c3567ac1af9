/**
 * Webhooks (`webhooks:` in config.yaml): the pipeline's events (domain/pipeline.ts) POSTed as JSON
 * to receivers, in the event log's order, each signed with HMAC-SHA256 over the exact body with
 * the webhook's secret, retried with backoff. Pure: config checks, the body, the signature and
 * the backoff; pipeline/webhooks.ts sends them.
 *
 * A receiver checks `X-Wharf-Signature-256: sha256=HEX` by computing HMAC-SHA256(secret, raw
 * body) itself and comparing in constant time (GitHub's scheme, which receivers know), and
 * dedupes on `X-Wharf-Delivery` (the event's seq): a delivery whose answer was lost is sent again.
 */
import { createHmac } from 'node:crypto';
import { AppError, ErrorCodes } from '../errors.ts';
import { parseDuration } from './duration.ts';
import { eventTypes, type EventType, type PipelineEvent } from './pipeline.ts';

export interface Webhook {
  name: string;
  /** http:// or https:// (the system CA store); redirects are not followed. */
  url: string;
  secret: string;
  /** The event types it is sent. */
  events: EventType[];
  timeoutSeconds: number;
  /** Attempts at one event before it is given up on (logged as such) and the next is sent. */
  attempts: number;
}

const defaultAttempts = 10;

/** The wait before attempt `failed + 1`: 1 s, doubling, at most 15 minutes. */
export const retryDelayMs = (failed: number) => Math.min(1000 * 2 ** Math.max(0, failed - 1), 15 * 60_000);

export function checkWebhooks(value: unknown, origin: string): Webhook[] {
  const bad = (what: string) => new AppError(ErrorCodes.config, `${origin}: ${what}`, { hint: 'e.g. webhooks: [{ name: ci, url: "https://ci.example/wharf", secret: "...", events: [image.promoted] }]' });
  if (!Array.isArray(value)) throw bad('must be a list of webhooks');
  const names = new Set<string>();
  return value.map((entry, i) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw bad(`entry ${i + 1} must be a mapping (name, url, secret, events, timeout, attempts)`);
    const { name, url, secret, events, timeout, attempts, ...rest } = entry as Record<string, unknown>;
    const unknown = Object.keys(rest)[0];
    if (unknown !== undefined) throw bad(`entry ${i + 1}: unknown key "${unknown}"`);
    if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9_.-]{0,62}$/i.test(name)) throw bad(`entry ${i + 1}: name must be a word of letters, digits, ".", "_" or "-"`);
    if (names.has(name)) throw bad(`two webhooks are named ${name}`);
    names.add(name);
    let parsed: URL | undefined;
    try {
      parsed = typeof url === 'string' ? new URL(url) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')) throw bad(`${name}: url must be an http:// or https:// URL`);
    if (typeof secret !== 'string' || secret.length < 16) throw bad(`${name}: secret must be a string of at least 16 characters (the receiver checks each body's HMAC with it)`);
    const types = events === undefined ? [...eventTypes] : events;
    if (!Array.isArray(types) || !types.length || !types.every((t) => (eventTypes as readonly unknown[]).includes(t))) {
      throw bad(`${name}: events must be a list of ${eventTypes.join(', ')}`);
    }
    let timeoutSeconds = 10;
    if (timeout !== undefined) {
      try {
        timeoutSeconds = parseDuration(String(timeout));
      } catch {
        throw bad(`${name}: timeout ${JSON.stringify(timeout)} is not a duration (such as 10s)`);
      }
      if (timeoutSeconds <= 0) throw bad(`${name}: timeout must be positive`);
    }
    const tries = attempts === undefined ? defaultAttempts : Number(attempts);
    if (!Number.isInteger(tries) || tries < 1 || tries > 100) throw bad(`${name}: attempts must be a whole number from 1 to 100`);
    return { name, url: parsed.href, secret, events: [...new Set(types as EventType[])], timeoutSeconds, attempts: tries };
  });
}

/** The JSON a receiver gets for an event. */
export function webhookBody(event: PipelineEvent): string {
  return JSON.stringify({
    id: event.seq,
    event: event.type,
    at: event.at,
    actor: event.actor,
    channel: event.channel,
    product: event.image.product,
    version: event.image.version,
    fingerprints: [event.image.fingerprint],
    image: event.image,
  });
}

/** The value of X-Wharf-Signature-256 for `body`. */
export const webhookSignature = (secret: string, body: string) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
