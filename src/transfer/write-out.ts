/**
 * Writing a body to a destination that may go away (a client's socket). A write pending when
 * the client leaves may never call back (seen under load: a copy, its open file and a one-time
 * secret the download held all stayed taken), so every wait here also ends when `out` closes.
 */
import type { Writable } from 'node:stream';

export interface Outlet {
  /**
   * Hands `bytes` to `out`; resolves once written, rejects when it failed or `out` closed. The
   * promise may be awaited later (after the next read): its rejection is never "unhandled".
   */
  write(bytes: Uint8Array): Promise<void>;
  /** Waits for an earlier write (or anything else) unless `out` closes first. */
  unlessGone<T>(pending: Promise<T>): Promise<T>;
  /** Stops watching `out` (call once the body is done, whatever the outcome). */
  release(): void;
}

export function outlet(out: Writable): Outlet {
  // Not Promise.race against one long-lived "closed" promise: every race adds a reaction to that
  // promise which holds the race's outcome until it settles, so a download kept every piece it
  // sent (measured: 3.6 GB for 100 clients following a fill). Waits register and unregister here.
  const waiting = new Set<(err: Error) => void>();
  let closed = out.destroyed;
  const onClose = () => {
    closed = true;
    for (const reject of waiting) reject(new Error('the client went away'));
    waiting.clear();
  };
  if (!closed) out.once('close', onClose);
  const unlessGone = <T>(pending: Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      if (closed) reject(new Error('the client went away'));
      else waiting.add(reject);
      pending.then(
        (value) => {
          waiting.delete(reject);
          resolve(value);
        },
        (err: unknown) => {
          waiting.delete(reject);
          reject(err);
        },
      );
    });
  return {
    unlessGone,
    write: (bytes) => {
      const settled = unlessGone(new Promise<void>((resolve, reject) => out.write(bytes, (err) => (err ? reject(err) : resolve()))));
      settled.catch(() => {});
      return settled;
    },
    release: () => out.off('close', onClose),
  };
}
