/**
 * Artifact downloads offloaded to the blob store (`blob_redirect`): a download is answered with
 * a short-lived URL of the store's own (an S3 presigned GET), so its bytes flow from the store,
 * not through wharf. A blob the store cannot name by one URL yet (S3: still in its upload's
 * parts) is served by wharf meanwhile and consolidated in the background, by one process of all
 * those sharing the store at a time (a lease), so that the next download is offloaded too.
 */
import type { BlobStore } from '../blob/store.ts';
import type { Logger } from '../log.ts';
import type { Leases } from '../meta/grants.ts';
import { holdLease } from './lease.ts';

/**
 * How long a handed-out URL opens its blob. A client follows a redirect at once; the store checks
 * the expiry when the download starts, not while it runs. Shorter than the time a retired blob's
 * bytes stay readable (blob/store.ts uploadIdleMs), so a URL never outlives its bytes.
 */
export const redirectTtlSeconds = 300;

export class BlobRedirects {
  private readonly blobs: BlobStore;
  private readonly leases: Leases;
  private readonly log: Logger;
  /** Blobs this process is consolidating now. */
  private readonly consolidating = new Set<string>();
  /** Blobs the store keeps in pieces whatever is done (too many parts, empty): not asked again. */
  private readonly staysInPieces = new Set<string>();

  constructor(blobs: BlobStore, leases: Leases, log: Logger) {
    this.blobs = blobs;
    this.leases = leases;
    this.log = log;
  }

  /** A URL that downloads the blob from the store, or undefined: wharf serves it (and has it consolidated). */
  async url(sha256: string): Promise<string | undefined> {
    const url = await this.blobs.redirectUrl(sha256, redirectTtlSeconds);
    if (!url && !this.staysInPieces.has(sha256)) void this.consolidate(sha256);
    return url;
  }

  /** Makes the blob one URL can name, unless another process is at it; failures are logged, not thrown. */
  async consolidate(sha256: string): Promise<void> {
    if (this.consolidating.has(sha256)) return;
    this.consolidating.add(sha256);
    try {
      const lease = await holdLease(this.leases, `consolidate:${sha256}`);
      if (!lease) return;
      try {
        const started = performance.now();
        if (await this.blobs.consolidate(sha256)) this.log.info('blob consolidated for redirects', { sha256, ms: Math.round(performance.now() - started) });
        else if (!(await this.blobs.redirectUrl(sha256, redirectTtlSeconds))) this.staysInPieces.add(sha256);
      } finally {
        await lease.release();
      }
    } catch (err) {
      this.log.warn('consolidating a blob for redirects failed; wharf serves it meanwhile', { sha256, err });
    } finally {
      this.consolidating.delete(sha256);
    }
  }

  /** Every stored blob, one after the other: the background jobs' sweep. */
  async consolidateAll(): Promise<void> {
    for await (const blob of this.blobs.list()) await this.consolidate(blob.sha256);
  }
}
