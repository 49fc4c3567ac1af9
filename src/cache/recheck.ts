/**
 * A mirror's cache looks after itself: every cached file is read and hashed again once per
 * `everyMs`, oldest check first, and one whose bytes changed on disk (a bad sector, a hand that
 * edited it) is removed, so the mirror stops serving it, stops telling the origin it holds it
 * (`/.wharf/held`), and fetches it anew, verified, when next asked for. Without it, an honest
 * mirror with one damaged file served it to every client of its region until an operator ran
 * `wharf cache verify`. The reads are paced (`bytesPerSecond`) so serving keeps the disk.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BlobStore } from '../blob/store.ts';
import { isAppError, ErrorCodes } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { EdgeCache } from './edge-cache.ts';
import { blobIntact } from './maintenance.ts';

/** Disk reads the re-check may take, on average. */
const bytesPerSecond = 64 * 1024 * 1024;
/** The longest it sleeps with nothing due (a new file is due `everyMs` after its fill). */
const idleMs = 60_000;

export function startRecheck(cache: EdgeCache, blobs: BlobStore, everyMs: number, log: Logger): { stop(): Promise<void> } {
  const stopper = new AbortController();
  const loop = (async () => {
    while (!stopper.signal.aborted) {
      const due = cache.dueForCheck(Date.now() - everyMs);
      let pauseMs = Math.min(idleMs, everyMs);
      if (due) {
        pauseMs = Math.max(10, (due.size / bytesPerSecond) * 1000);
        try {
          await cache.checked(due.sha256, await blobIntact(blobs, due.sha256));
        } catch (err) {
          // Gone meanwhile (evicted, purged by hand): nothing to check, nor to serve.
          if (isAppError(err, ErrorCodes.notFound)) cache.forget(due.sha256);
          else {
            log.warn('cache re-check failed', { sha256: due.sha256, err });
            pauseMs = Math.max(pauseMs, 1_000);
          }
        }
      }
      await sleep(pauseMs, undefined, { signal: stopper.signal, ref: false }).catch(() => {});
    }
  })();
  return {
    async stop() {
      stopper.abort();
      await loop;
    },
  };
}
