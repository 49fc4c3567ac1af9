/**
 * The background jobs of `wharf serve`: mirror syncs when their interval is due, and auto-update
 * of images every `auto_update_interval`. One job at a time, so two syncs never race.
 */
import type { Store } from '../core/context.ts';
import { syncMirror } from './sync.ts';
import { refreshImages } from './refresh.ts';
import { getRemote } from './remotes.ts';
import { syncOciMirror } from './oci-mirror.ts';

export interface Scheduler {
  stop(): Promise<void>;
}

export function startScheduler(
  store: Store,
  options: { autoUpdateSeconds: number; remoteCacheExpiryDays: number; tickMs?: number; registryCredentials?: Record<string, { username: string; password: string }> },
): Scheduler {
  const controller = new AbortController();
  let lastRefresh = Date.now();
  let running: Promise<void> = Promise.resolve();
  const tick = async () => {
    for (const mirror of await store.meta.listMirrors()) {
      if (controller.signal.aborted) return;
      const due = mirror.intervalSeconds > 0 && (!mirror.lastSync || Date.parse(mirror.lastSync) + mirror.intervalSeconds * 1000 <= Date.now());
      if (!due) continue;
      try {
        if ((await getRemote(store, mirror.remote)).protocol === 'oci') {
          const report = await syncOciMirror(store, mirror, options.registryCredentials);
          store.log.info('registry mirror synced', { mirror: mirror.name, tags: report.tags.length, blobs: report.blobs, failed: report.failed.length });
          continue;
        }
        const report = await syncMirror(store, mirror, { signal: controller.signal });
        store.log.info('mirror synced', { mirror: mirror.name, added: report.added.length, removed: report.removed.length, failed: report.failed.length });
      } catch (err) {
        store.log.error('mirror sync failed', { mirror: mirror.name, err });
        await store.meta.putMirror({ ...mirror, lastSync: new Date().toISOString(), lastError: (err as Error).message });
      }
    }
    // Cached files of lazy mirrors nobody downloaded for a while: drop the copy, keep the entry.
    if (options.remoteCacheExpiryDays > 0) {
      const before = new Date(Date.now() - options.remoteCacheExpiryDays * 86400_000).toISOString();
      for (const sha of await store.meta.idleLazyBlobs(before)) await store.blobs.delete(sha);
    }
    if (options.autoUpdateSeconds > 0 && Date.now() - lastRefresh >= options.autoUpdateSeconds * 1000) {
      lastRefresh = Date.now();
      await refreshImages(store, [], controller.signal);
    }
  };
  const schedule = () => {
    running = running.then(tick).catch((err: unknown) => store.log.error('background job failed', { err }));
  };
  const timer = setInterval(schedule, options.tickMs ?? 30_000);
  timer.unref();
  // At once too: a process taking the jobs over (at start, or from one that died mid-sync) goes
  // on with what is due now, not a tick later.
  schedule();
  return {
    stop: async () => {
      clearInterval(timer);
      controller.abort();
      await running;
    },
  };
}
