/**
 * The garbage-collection contract, shared by every process that opens the store (the server and
 * each CLI command). "This file is used" and "this file may be deleted" must never both be true:
 *
 * - a writer claims its blobs in the metadata store *before* it makes them visible, and keeps the
 *   claim until the record that uses them is committed;
 * - the collector marks a blob as being collected in the metadata store (refused while it is
 *   used or claimed), only then deletes the bytes, and then forgets the blob;
 * - a claim on a blob that is being collected waits until the collection is over, and then the
 *   writer's own bytes are put in place again.
 *
 * Both decisions are transactions of the metadata store, so they serialise across processes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import type { BlobWriter } from '../blob/store.ts';
import { ErrorCodes, isAppError, notFound } from '../errors.ts';
import type { BlobLedger } from '../meta/store.ts';
import { graceCutoff, type StoreWith } from './context.ts';

/** A claim outlives any commit by far; an expired one belongs to a writer that died. */
const claimTtlMs = 60 * 60_000;
/** How long a writer waits for the collector to finish with a blob it wants to reuse. */
const claimWaitMs = 60_000;

/**
 * Commits staged blobs and then `record` (the metadata row that uses them) as one step that the
 * collector cannot cut in two. `existing` names blobs already stored that the record uses too:
 * they are claimed alike and must still be there once claimed. Nothing stays claimed afterwards.
 */
export async function commitBlobs(store: StoreWith<BlobLedger>, writers: BlobWriter[], record: () => Promise<void>, existing: string[] = []): Promise<void> {
  const claim = randomUUID();
  await claimBlobs(store, claim, [...new Set([...(await Promise.all(writers.map((w) => w.digest()))), ...existing])]);
  try {
    for (const sha of existing) {
      if ((await store.blobs.size(sha)) === undefined) throw notFound(`The file ${sha.slice(0, 12)} was collected before it could be used`);
    }
    for (const writer of writers) await writer.commit();
    await record();
  } finally {
    await store.meta.releaseClaim(claim);
  }
}

async function claimBlobs(store: StoreWith<BlobLedger>, claim: string, shas: string[]): Promise<void> {
  const deadline = Date.now() + claimWaitMs;
  for (;;) {
    try {
      await store.meta.claimBlobs(claim, shas, new Date((await store.meta.clock()).getTime() + claimTtlMs).toISOString());
      return;
    } catch (err) {
      if (!isAppError(err, ErrorCodes.busy) || Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

export interface CollectOptions {
  now?: Date;
  /** Staging files idle this long whose writer is not a live process here are removed too. */
  stagingIdleMs?: number;
}

/**
 * Deletes the files no image uses once their grace period is over, files with no record at all
 * (a writer that crashed between storing and recording) and staging files of dead writers.
 */
export async function collectGarbage(store: StoreWith<BlobLedger>, options: CollectOptions = {}): Promise<{ removed: string[] }> {
  // The store's clock: the deletions that started the grace periods were stamped by it.
  const now = options.now ?? (await store.meta.clock());
  const cutoff = graceCutoff(store, now);
  const removed: string[] = [];
  const collect = async (sha256: string) => {
    if (!(await store.meta.beginCollect(sha256, cutoff, now.toISOString()))) return;
    await store.blobs.delete(sha256);
    await store.meta.finishCollect(sha256);
    removed.push(sha256);
  };
  for (const sha of await store.meta.collectableBlobs(cutoff)) await collect(sha);
  // Files without a record: a writer that died between storing them and recording the image.
  // No clock is needed to tell them from a live writer's: a writer claims its blobs before it
  // stores them, and beginCollect refuses a claimed blob.
  for await (const blob of store.blobs.list()) {
    if (!removed.includes(blob.sha256) && (await store.meta.getBlob(blob.sha256)) === undefined) await collect(blob.sha256);
  }
  await store.blobs.cleanStaging(options.stagingIdleMs);
  if (removed.length) store.log.info('blobs collected', { count: removed.length });
  return { removed };
}

