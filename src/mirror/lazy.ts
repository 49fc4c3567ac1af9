/**
 * Lazy mirrors: the index is published at once and each file is fetched from upstream on its
 * first request, verified against the sha256 the index promised, kept, and shared by every
 * request that arrives meanwhile (one download per file, however many clients ask).
 *
 * This is a BlobStore that wraps the real one, so every view (simplestreams, LXD exports,
 * direct URLs) gets fetch-through without knowing about it.
 */
import type { Readable } from 'node:stream';
import type { BlobInfo, BlobStore, BlobWriter, ByteRange, OpenedBlob } from '../blob/store.ts';
import type { BlobLedger } from '../meta/store.ts';
import type { Logger } from '../log.ts';
import { isAppError, ErrorCodes } from '../errors.ts';
import { downloadBlob } from './download.ts';
import type { Leases } from '../meta/grants.ts';
import { holdLease, type HeldLease } from '../core/lease.ts';

/** How often a process waiting on another's fetch of the same file looks again. */
const waitPollMs = 100;
/**
 * A blob's last use is written at most this often per process: idle copies are dropped after
 * days, and a write per download (a synced transaction) would cap the downloads per second.
 */
const touchEveryMs = 60_000;

export class FetchThroughBlobs implements BlobStore {
  private readonly inner: BlobStore;
  private readonly meta: BlobLedger;
  private readonly log: Logger;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly leases: Leases | undefined;
  private readonly touchedAt = new Map<string, number>();

  /** `leases` extend "one download per file" to every serving process that shares them. */
  constructor(inner: BlobStore, meta: BlobLedger, log: Logger, leases?: Leases) {
    this.inner = inner;
    this.meta = meta;
    this.log = log;
    this.leases = leases;
  }

  openRead(sha256: string, range?: ByteRange): Promise<Readable> {
    return this.local(sha256, () => this.inner.openRead(sha256, range));
  }

  openCopy(sha256: string, range?: ByteRange): Promise<OpenedBlob> {
    return this.local(sha256, () => this.inner.openCopy(sha256, range));
  }

  withLocalFile<T>(sha256: string, use: (path: string) => Promise<T>): Promise<T> {
    return this.local(sha256, () => this.inner.withLocalFile(sha256, use));
  }

  /** Opens the local copy, fetching it first if it is missing and has an upstream source. */
  private async local<T>(sha256: string, open: () => Promise<T>): Promise<T> {
    let opened: T;
    try {
      opened = await open();
    } catch (err) {
      if (!isAppError(err, ErrorCodes.notFound)) throw err;
      opened = await this.fetchAndOpen(sha256, err, open);
    }
    void this.markUsed(sha256);
    return opened;
  }

  /**
   * The scheduler drops idle copies without asking anyone: a copy fetched a moment ago, whose
   * last download was long before, can go between its fetch and the open here. Then fetch again.
   */
  private async fetchAndOpen<T>(sha256: string, missing: unknown, open: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await this.ensure(sha256, missing);
      try {
        return await open();
      } catch (err) {
        if (!isAppError(err, ErrorCodes.notFound) || attempt >= 3) throw err;
      }
    }
  }

  /** Fetches a missing blob that has an upstream source, once however many ask; else rethrows. */
  private async ensure(sha256: string, missing: unknown): Promise<void> {
    const record = await this.meta.getBlob(sha256);
    if (!record?.sourceUrl) throw missing;
    let download = this.inFlight.get(sha256);
    if (!download) {
      download = this.fetchOnce(sha256, record.size, record.sourceUrl, record.sourceCertificate ?? '').finally(() => this.inFlight.delete(sha256));
      this.inFlight.set(sha256, download);
    }
    await download;
  }

  /**
   * Fetches the file, unless another process (on any host sharing the store) is fetching it:
   * then waits for its copy, or for its lease to expire once it died.
   */
  private async fetchOnce(sha256: string, size: number, url: string, certificate: string): Promise<void> {
    if (!this.leases) return this.fetch(sha256, size, url, certificate);
    let held: HeldLease | undefined;
    while (!(held = await holdLease(this.leases, `fetch:${sha256}`))) {
      await new Promise((resolve) => setTimeout(resolve, waitPollMs));
      if ((await this.inner.size(sha256)) !== undefined) return;
    }
    try {
      // The holder we waited for may have finished just before we took the lease over.
      if ((await this.inner.size(sha256)) !== undefined) return;
      // A lease lost (this process stalled past its time to live, and another took over) stops
      // this download: the other one is the fetch now.
      await this.fetch(sha256, size, url, certificate, held.lost);
    } finally {
      await held.release();
    }
  }

  private async markUsed(sha256: string) {
    const now = Date.now();
    if (now - (this.touchedAt.get(sha256) ?? 0) < touchEveryMs) return;
    this.touchedAt.set(sha256, now);
    await this.meta.touchBlob(sha256, new Date(now).toISOString()).catch(() => {});
  }

  private async fetch(sha256: string, size: number, url: string, certificate: string, signal?: AbortSignal): Promise<void> {
    const started = Date.now();
    try {
      await downloadBlob(this.inner, new URL(url), { sha256, size }, { certificate: certificate || undefined, signal });
      // Fresh now, before anyone opens it: the scheduler picks copies by their last use.
      await this.markUsed(sha256);
      this.log.info('lazy file fetched', { sha256, bytes: size, ms: Date.now() - started });
    } catch (err) {
      this.log.error('lazy fetch failed', { sha256, url, err });
      throw err;
    }
  }

  createWriter(): Promise<BlobWriter> {
    return this.inner.createWriter();
  }
  resumeWriter(id: string): Promise<BlobWriter> {
    return this.inner.resumeWriter(id);
  }
  size(sha256: string): Promise<number | undefined> {
    return this.inner.size(sha256);
  }
  delete(sha256: string): Promise<void> {
    return this.inner.delete(sha256);
  }
  list(): AsyncIterable<BlobInfo> {
    return this.inner.list();
  }
  cleanStaging(idleMs?: number): Promise<void> {
    return this.inner.cleanStaging(idleMs);
  }
  /** Only for a copy that is here: one that is not is fetched by the download wharf serves itself. */
  async redirectUrl(sha256: string, ttlSeconds: number): Promise<string | undefined> {
    const url = await this.inner.redirectUrl(sha256, ttlSeconds);
    if (url) void this.markUsed(sha256);
    return url;
  }
  consolidate(sha256: string): Promise<boolean> {
    return this.inner.consolidate(sha256);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
