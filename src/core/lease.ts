/**
 * Holding a lease (meta/grants.ts `Leases`) for as long as the work it covers runs: taken once,
 * renewed every third of its time to live, released when the work ends. A holder that dies stops
 * renewing, so its lease is free again within `ttlMs`, on whatever host it ran; a renewal that
 * fails (the lease expired and another holder took it) aborts `lost`: the work should stop.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { instanceId } from '../instance.ts';
import type { Leases } from '../meta/grants.ts';

/** A lease's time to live unless said otherwise: how long a dead holder keeps others waiting. */
export const defaultLeaseTtlMs = 30_000;

export interface HeldLease {
  /** Aborted once the lease was lost (a renewal failed). */
  readonly lost: AbortSignal;
  /** Stops renewing and gives the lease up (idempotent). */
  release(): Promise<void>;
}

export interface LeaseOptions {
  /** Who holds it: this process's instance id by default. */
  holder?: string;
  ttlMs?: number;
}

/** Takes `name` and keeps it renewed; undefined while another holder has it. */
export async function holdLease(leases: Leases, name: string, options: LeaseOptions = {}): Promise<HeldLease | undefined> {
  const { holder = instanceId, ttlMs = defaultLeaseTtlMs } = options;
  if (!(await leases.takeLease(name, holder, ttlMs))) return undefined;
  const lost = new AbortController();
  let released = false;
  const renew = async () => {
    const kept = await leases.renewLease(name, holder, ttlMs).catch(() => false);
    if (!kept && !released) {
      clearInterval(timer);
      lost.abort(new Error(`the lease ${name} was lost`));
    }
  };
  const timer = setInterval(() => void renew(), Math.max(1, Math.floor(ttlMs / 3)));
  timer.unref();
  return {
    lost: lost.signal,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await leases.releaseLease(name, holder);
    },
  };
}

/** Work that runs while a lease is held: started on taking it, stopped on losing it. */
export interface LeaderWork {
  stop(): Promise<void>;
}

/**
 * Runs `start`'s work only while this process holds lease `name`, on whichever of the processes
 * (on any host) sharing the store holds it: one at a time. A process that is not leading tries
 * again every third of the time to live, so the work moves to another within about a time to live
 * of its leader's death; a leader that loses the lease stops its work.
 */
export function whileLeading(leases: Leases, name: string, start: () => LeaderWork, options: LeaseOptions & { onChange?: (leading: boolean) => void } = {}): { stop(): Promise<void> } {
  const ttlMs = options.ttlMs ?? defaultLeaseTtlMs;
  const stopping = new AbortController();
  const loop = (async () => {
    while (!stopping.signal.aborted) {
      const held = await holdLease(leases, name, options).catch(() => undefined);
      if (!held) {
        await sleep(ttlMs / 3, undefined, { signal: stopping.signal, ref: false }).catch(() => {});
        continue;
      }
      options.onChange?.(true);
      const work = start();
      await new Promise<void>((resolve) => {
        if (held.lost.aborted || stopping.signal.aborted) return resolve();
        held.lost.addEventListener('abort', () => resolve(), { once: true });
        stopping.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await work.stop();
      await held.release().catch(() => {});
      options.onChange?.(false);
    }
  })();
  return {
    async stop() {
      stopping.abort();
      await loop;
    },
  };
}
