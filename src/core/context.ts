/** What every use case works on: the two stores, a logger and the few settings they obey. */
import type { BlobStore } from '../blob/store.ts';
import type { MetaStore } from '../meta/store.ts';
import type { Logger } from '../log.ts';
import type { ReleaseNames } from '../domain/release-names.ts';

export interface Store {
  meta: MetaStore;
  blobs: BlobStore;
  log: Logger;
  /** How long files of a deleted or unpublished image stay downloadable (clients cache indexes for 1 h). */
  graceSeconds: number;
  /** The names each OS release answers to (debian/bookworm = debian/12), for product aliases. */
  releaseNames: ReleaseNames;
}

/**
 * What a use case that needs one concern of the metadata store takes (`StoreWith<BlobLedger>`);
 * one that needs nothing else takes `{ meta: TrustStore }`. A whole `Store` fits both.
 */
export type StoreWith<M> = Omit<Store, 'meta'> & { meta: M };

/** Files unpublished before this moment are past their grace period. */
export const graceCutoff = (store: Pick<Store, 'graceSeconds'>, now = new Date()) => new Date(now.getTime() - store.graceSeconds * 1000).toISOString();
