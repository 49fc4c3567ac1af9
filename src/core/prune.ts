/**
 * `wharf prune`: retire old versions of products, then collect the files nothing uses any more.
 * The newest version of a product and images with a hand-made alias are never pruned, and no
 * file is deleted while a recently published index may still name it (the grace period).
 */
import type { Image } from '../domain/image.ts';
import { checkKeep, productOf, serialOf } from '../domain/product.ts';
import { graceCutoff, type Store } from './context.ts';
import { deleteImages } from './images.ts';
import { collectGarbage } from './collect.ts';

export interface PruneOptions {
  /** Versions kept per product. */
  keep?: number;
  /** Versions uploaded longer ago than this (seconds) go, but never a product's newest. */
  olderThanSeconds?: number;
  dryRun?: boolean;
  now?: Date;
  /** Uploads idle this long (`upload_ttl`: a registry upload abandoned half-way) are removed too. */
  stagingIdleMs?: number;
}

export async function prune(store: Store, options: PruneOptions): Promise<{ images: Image[]; blobs: string[] }> {
  if (options.keep !== undefined) checkKeep(options.keep);
  const now = options.now ?? (await store.meta.clock());
  const [images, aliases] = await Promise.all([store.meta.listImages(), store.meta.listAliases()]);
  const pinned = new Set(aliases.map((a) => a.fingerprint));
  const byProduct = new Map<string, Image[]>();
  for (const image of images) {
    // Mirrors do their own retention.
    if (image.mirror) continue;
    const key = productOf(image).key;
    byProduct.set(key, [...(byProduct.get(key) ?? []), image]);
  }
  const doomed: Image[] = [];
  for (const members of byProduct.values()) {
    const versions = [...new Set(members.map(serialOf))].sort().reverse();
    versions.forEach((version, index) => {
      if (index === 0) return;
      const inVersion = members.filter((i) => serialOf(i) === version);
      const tooMany = options.keep !== undefined && index >= options.keep;
      const tooOld =
        options.olderThanSeconds !== undefined && inVersion.every((i) => Date.parse(i.uploadedAt) < now.getTime() - options.olderThanSeconds! * 1000);
      if (tooMany || tooOld) doomed.push(...inVersion.filter((i) => !pinned.has(i.fingerprint)));
    });
  }
  if (options.dryRun) return { images: doomed, blobs: await store.meta.collectableBlobs(graceCutoff(store, now)) };
  if (doomed.length) await deleteImages(store, doomed.map((i) => i.fingerprint), 'prune');
  const { removed } = await collectGarbage(store, { now, ...(options.stagingIdleMs !== undefined ? { stagingIdleMs: options.stagingIdleMs } : {}) });
  return { images: doomed, blobs: removed };
}
