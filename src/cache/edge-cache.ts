/**
 * The cache of a mirror (`wharf serve --mirror-of ORIGIN`): files of the origin, kept by sha256
 * in their own blob store once verified against the origin's index, evicted least recently used
 * first when the cache is over `maxSize`, when unused for `inactiveMs`, or once the origin no
 * longer lists them (after the grace period). A miss starts one fill that every reader shares.
 */
import type { BlobStore } from '../blob/store.ts';
import type { Logger } from '../log.ts';
import { under, type FetchOptions } from '../remote/fetch.ts';
import { isAppError, ErrorCodes } from '../errors.ts';
import { Fill } from './fill.ts';
import type { ListedFile, OriginIndex } from './origin-index.ts';

export interface EdgeCacheOptions {
  blobs: BlobStore;
  index: OriginIndex;
  fetch: FetchOptions;
  maxSize: number;
  inactiveMs: number;
  log: Logger;
}

export interface CacheCounters {
  hits: number;
  misses: number;
  /** Bytes fetched from the origin into the cache. */
  filledBytes: number;
  evictions: number;
  /** Fills that failed: the origin unreachable, or its bytes not what its index lists. */
  upstreamFailures: number;
}

export type CacheAnswer = { kind: 'hit'; file: ListedFile } | { kind: 'fill'; file: ListedFile; fill: Fill };

interface Entry {
  size: number;
  lastUse: number;
  /** Last use written to the store (it is written at most once a minute per file). */
  savedUse: number;
}

const touchEveryMs = 60_000;

export class EdgeCache {
  private readonly options: EdgeCacheOptions;
  private readonly entries = new Map<string, Entry>();
  private readonly fills = new Map<string, Fill>();
  /** Responses reading each file now (from the store or its fill): never evicted meanwhile. */
  private readonly readers = new Map<string, number>();
  private sweeping: Promise<void> | undefined;
  readonly counters: CacheCounters = { hits: 0, misses: 0, filledBytes: 0, evictions: 0, upstreamFailures: 0 };

  constructor(options: EdgeCacheOptions) {
    this.options = options;
  }

  /** Learns what the store holds (its last-use times survive restarts). */
  async load(): Promise<void> {
    for await (const blob of this.options.blobs.list()) {
      this.entries.set(blob.sha256, { size: blob.size, lastUse: blob.modifiedMs, savedUse: blob.modifiedMs });
    }
  }

  get usedBytes(): number {
    let total = 0;
    for (const entry of this.entries.values()) total += entry.size;
    return total;
  }

  /** The cached sha256s: what this mirror can serve without asking the origin. */
  held(): string[] {
    return [...this.entries.keys()];
  }

  /** The file at `path` of the origin, cached or being filled; undefined when the origin lists no such file. */
  async open(path: string): Promise<CacheAnswer | undefined> {
    const file = await this.options.index.find(path);
    if (!file) return undefined;
    if (this.entries.has(file.sha256)) {
      this.counters.hits++;
      return { kind: 'hit', file };
    }
    this.counters.misses++;
    let fill = this.fills.get(file.sha256);
    if (!fill) {
      fill = new Fill(this.options.blobs, under(this.options.index.origin, path), file, this.options.fetch);
      this.fills.set(file.sha256, fill);
      void this.settle(fill, path);
    }
    return { kind: 'fill', file, fill };
  }

  /**
   * Marks a response reading `sha256` (from the store or its fill) until `done` is called: the
   * file counts as used now and is not evicted while read.
   */
  reading(sha256: string): () => void {
    this.readers.set(sha256, (this.readers.get(sha256) ?? 0) + 1);
    const entry = this.entries.get(sha256);
    if (entry) {
      entry.lastUse = Date.now();
      if (entry.lastUse - entry.savedUse >= touchEveryMs) {
        entry.savedUse = entry.lastUse;
        this.options.blobs.touch(sha256, new Date(entry.lastUse)).catch(() => {});
      }
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = this.readers.get(sha256)! - 1;
      if (left === 0) this.readers.delete(sha256);
      else this.readers.set(sha256, left);
    };
  }

  /** Stops the fills in progress and waits for them to be gone. */
  async close(): Promise<void> {
    await Promise.all([...this.fills.values()].map((f) => f.stop()));
    await this.sweeping;
  }

  /** A cached file turned out missing from the store (purged by hand): forget it, fill it again. */
  forget(sha256: string): void {
    this.entries.delete(sha256);
  }

  private async settle(fill: Fill, path: string): Promise<void> {
    const started = Date.now();
    await fill.finished;
    this.fills.delete(fill.sha256);
    if (fill.error) {
      this.counters.upstreamFailures++;
      this.options.log.error('cache fill failed', { path, sha256: fill.sha256, err: fill.error });
      return;
    }
    const now = Date.now();
    this.entries.set(fill.sha256, { size: fill.size, lastUse: now, savedUse: now });
    this.counters.filledBytes += fill.size;
    this.options.log.info('cache filled', { path, sha256: fill.sha256, bytes: fill.size, ms: now - started });
    await this.sweep();
  }

  /**
   * Evicts what the cache should no longer hold: files no known path names, files unused for
   * `inactiveMs`, then the least recently used until the total fits `maxSize`. Files being read
   * stay (the store would still serve an opened file, but a reader waiting on a fill would not).
   */
  sweep(): Promise<void> {
    this.sweeping ??= this.evict().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private async evict(): Promise<void> {
    const now = Date.now();
    // Before the origin's index was ever read, nothing is known to be unwanted.
    const wanted = this.options.index.lastChecked === null ? undefined : this.options.index.wanted();
    const byAge = [...this.entries].filter(([sha]) => !this.readers.has(sha)).sort(([, a], [, b]) => a.lastUse - b.lastUse);
    let total = this.usedBytes;
    for (const [sha256, entry] of byAge) {
      const stale = (wanted !== undefined && !wanted.has(sha256)) || now - entry.lastUse > this.options.inactiveMs;
      if (!stale && total <= this.options.maxSize) continue;
      try {
        await this.options.blobs.delete(sha256);
      } catch (err) {
        if (!isAppError(err, ErrorCodes.notFound)) {
          this.options.log.error('cache eviction failed', { sha256, err });
          continue;
        }
      }
      this.entries.delete(sha256);
      total -= entry.size;
      this.counters.evictions++;
      this.options.log.info('cache evicted', { sha256, bytes: entry.size, reason: stale ? 'stale' : 'size' });
    }
  }
}
