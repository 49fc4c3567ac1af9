/**
 * The cache of a mirror (`wharf serve --mirror-of ORIGIN`): files of the origin, kept by sha256
 * in their own blob store once verified against the origin's index, evicted least recently used
 * first when the cache is over `maxSize`, when unused for `inactiveMs`, or once the origin no
 * longer lists them (after the grace period). A miss whose bytes a client needs starts one fill
 * that every reader shares.
 *
 * Anyone may ask for any listed file, so what fills cost is bounded before one starts: at most
 * `maxFills` at once, `maxFillsPerAddress` started by one client address (however soon it hangs
 * up: a fill goes on for the readers to come), and the bytes of the fills in flight count against
 * `maxSize` as if stored, so the cache never holds more than `maxSize`, staging included. A file
 * larger than the whole cache is refused.
 */
import type { BlobStore } from '../blob/store.ts';
import type { FsBlobStore } from '../blob/fs.ts';
import type { Logger } from '../log.ts';
import { under, type FetchOptions } from '../remote/fetch.ts';
import { AppError, isAppError, ErrorCodes } from '../errors.ts';
import { Fill } from './fill.ts';
import type { ListedFile, OriginIndex } from './origin-index.ts';

/** The cache's blobs: a store on this host's files, which keeps each file's last use (blob/fs.ts). */
export type CacheBlobs = BlobStore & Pick<FsBlobStore, 'touch' | 'lastUses'>;

export interface EdgeCacheOptions {
  blobs: CacheBlobs;
  index: OriginIndex;
  fetch: FetchOptions;
  maxSize: number;
  inactiveMs: number;
  /** Fills in flight at once; 0 = no limit. */
  maxFills?: number;
  /** Fills in flight one client address may have started; 0 = no limit. */
  maxFillsPerAddress?: number;
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
  /** Fills refused: too many in flight (in all, or for one client), no room, larger than the cache. */
  refusedFills: number;
  /** Cached files found damaged when hashed again, and removed. */
  damaged: number;
}

/** A file the origin lists: in the cache, or not (`fill` brings it when its bytes are wanted). */
export type CacheAnswer = { kind: 'hit'; file: ListedFile } | { kind: 'miss'; file: ListedFile };

interface Entry {
  size: number;
  lastUse: number;
  /** Last use written to the store (it is written at most once a minute per file). */
  savedUse: number;
  /** When its bytes were last found right (filled, or hashed again); 0: not since this process started. */
  checkedAt: number;
}

const touchEveryMs = 60_000;

export class EdgeCache {
  private readonly options: EdgeCacheOptions;
  private readonly entries = new Map<string, Entry>();
  private readonly fills = new Map<string, Fill>();
  /** Bytes the fills in flight will store: counted against `maxSize` from their start. */
  private reserved = 0;
  /** Fills in flight by the client address that started them. */
  private readonly startedBy = new Map<string, number>();
  /** Evicted files whose deletion is under way: a new fill of one waits for it. */
  private readonly deleting = new Map<string, Promise<void>>();
  /** Responses reading each file now (from the store or its fill): never evicted meanwhile. */
  private readonly readers = new Map<string, number>();
  private sweeping: Promise<void> | undefined;
  readonly counters: CacheCounters = { hits: 0, misses: 0, filledBytes: 0, evictions: 0, upstreamFailures: 0, refusedFills: 0, damaged: 0 };

  constructor(options: EdgeCacheOptions) {
    this.options = options;
  }

  /** Learns what the store holds (its last-use times survive restarts). */
  async load(): Promise<void> {
    for await (const blob of this.options.blobs.lastUses()) {
      this.entries.set(blob.sha256, { size: blob.size, lastUse: blob.lastUseMs, savedUse: blob.lastUseMs, checkedAt: 0 });
    }
  }

  get usedBytes(): number {
    let total = 0;
    for (const entry of this.entries.values()) total += entry.size;
    return total;
  }

  /** The origin's index this cache answers from (to tell why it knows nothing yet). */
  get index(): OriginIndex {
    return this.options.index;
  }

  /** The cached sha256s: what this mirror can serve without asking the origin. */
  held(): string[] {
    return [...this.entries.keys()];
  }

  /** The file at `path` of the origin, cached or not; undefined when the origin lists no such file. */
  async open(path: string): Promise<CacheAnswer | undefined> {
    const file = await this.options.index.find(path);
    if (!file) return undefined;
    if (this.entries.has(file.sha256)) {
      this.counters.hits++;
      return { kind: 'hit', file };
    }
    this.counters.misses++;
    return { kind: 'miss', file };
  }

  /**
   * The fill of `file` (listed at `path`): the one in flight, or a new one started for `client`
   * (its address) if the bounds allow; `busy` when they do not now, `disk_full` when the file is
   * larger than the whole cache.
   */
  async fill(path: string, file: ListedFile, client: string | undefined): Promise<Fill> {
    await this.deleting.get(file.sha256);
    const running = this.fills.get(file.sha256);
    if (running) return running;
    const { maxSize, maxFills = 0, maxFillsPerAddress = 0 } = this.options;
    const refuse = (err: AppError) => {
      this.counters.refusedFills++;
      return err;
    };
    if (file.size > maxSize) {
      throw refuse(new AppError(ErrorCodes.diskFull, `${path.slice(0, 200)} (${file.size} bytes) is larger than this mirror's whole cache (cache_max_size ${maxSize} bytes)`));
    }
    if (maxFills > 0 && this.fills.size >= maxFills) throw refuse(new AppError(ErrorCodes.busy, `This mirror is fetching ${this.fills.size} files from its origin, as many as it takes at once: try again shortly`));
    const started = client === undefined ? 0 : (this.startedBy.get(client) ?? 0);
    if (maxFillsPerAddress > 0 && started >= maxFillsPerAddress) {
      throw refuse(new AppError(ErrorCodes.busy, `This client started ${started} downloads from the origin that are still in flight, as many as one address may: try again once they are done`));
    }
    if (!this.makeRoom(file.size)) throw refuse(new AppError(ErrorCodes.busy, 'The cache is full of files being read or fetched: try again shortly'));
    const fill = new Fill(this.options.blobs, under(this.options.index.origin, path), file, this.options.fetch);
    this.fills.set(file.sha256, fill);
    this.reserved += file.size;
    if (client !== undefined) this.startedBy.set(client, started + 1);
    void this.settle(fill, path, client);
    return fill;
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

  /** The cached file whose bytes were found right longest ago, if that was before `before`. */
  dueForCheck(before: number): { sha256: string; size: number } | undefined {
    let due: [string, Entry] | undefined;
    for (const entry of this.entries) if (entry[1].checkedAt < before && (!due || entry[1].checkedAt < due[1].checkedAt)) due = entry;
    return due && { sha256: due[0], size: due[1].size };
  }

  /** The outcome of hashing a cached file again: found right, or damaged (removed, fetched anew when asked for). */
  async checked(sha256: string, intact: boolean): Promise<void> {
    const entry = this.entries.get(sha256);
    if (!entry) return;
    if (intact) {
      entry.checkedAt = Date.now();
      return;
    }
    this.counters.damaged++;
    this.options.log.error('cached file damaged: removed, it is fetched again when next asked for', { sha256 });
    await this.remove(sha256, 'damaged');
  }

  /** A cached file turned out missing from the store (purged by hand): forget it, fill it again. */
  forget(sha256: string): void {
    this.entries.delete(sha256);
  }

  private async settle(fill: Fill, path: string, client: string | undefined): Promise<void> {
    const started = Date.now();
    await fill.finished;
    this.fills.delete(fill.sha256);
    this.reserved -= fill.size;
    if (client !== undefined) {
      const left = this.startedBy.get(client)! - 1;
      if (left === 0) this.startedBy.delete(client);
      else this.startedBy.set(client, left);
    }
    if (fill.error) {
      this.counters.upstreamFailures++;
      this.options.log.error('cache fill failed', { path, sha256: fill.sha256, err: fill.error });
      return;
    }
    const now = Date.now();
    this.entries.set(fill.sha256, { size: fill.size, lastUse: now, savedUse: now, checkedAt: now });
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

  /** Files no reader holds, least recently used first: what may be evicted. */
  private evictable(): [string, Entry][] {
    return [...this.entries].filter(([sha]) => !this.readers.has(sha)).sort(([, a], [, b]) => a.lastUse - b.lastUse);
  }

  private async evict(): Promise<void> {
    const now = Date.now();
    // Before the origin's index was ever read, nothing is known to be unwanted.
    const wanted = this.options.index.lastChecked === null ? undefined : this.options.index.wanted();
    let total = this.usedBytes + this.reserved;
    const victims: [string, 'stale' | 'size'][] = [];
    for (const [sha256, entry] of this.evictable()) {
      const stale = (wanted !== undefined && !wanted.has(sha256)) || now - entry.lastUse > this.options.inactiveMs;
      if (!stale && total <= this.options.maxSize) continue;
      victims.push([sha256, stale ? 'stale' : 'size']);
      total -= entry.size;
    }
    await Promise.all(victims.map(([sha256, reason]) => this.remove(sha256, reason)));
  }

  /**
   * Makes room for `bytes` more (a fill about to start) by evicting the least recently used files
   * no one reads, chosen at once so that fills starting together never count the same room;
   * false, evicting nothing, when even that would not make room.
   */
  private makeRoom(bytes: number): boolean {
    let over = this.usedBytes + this.reserved + bytes - this.options.maxSize;
    if (over <= 0) return true;
    const victims: string[] = [];
    for (const [sha256, entry] of this.evictable()) {
      if (over <= 0) break;
      victims.push(sha256);
      over -= entry.size;
    }
    if (over > 0) return false;
    for (const sha256 of victims) void this.remove(sha256, 'size');
    return true;
  }

  /** Forgets a cached file at once and deletes its bytes (kept, and remembered, if that fails). */
  private async remove(sha256: string, reason: 'stale' | 'size' | 'damaged'): Promise<void> {
    const entry = this.entries.get(sha256);
    if (!entry) return;
    this.entries.delete(sha256);
    const deletion = this.options.blobs.delete(sha256).then(
      () => {
        this.counters.evictions++;
        this.options.log.info('cache evicted', { sha256, bytes: entry.size, reason });
      },
      (err: unknown) => {
        if (isAppError(err, ErrorCodes.notFound)) return;
        this.options.log.error('cache eviction failed', { sha256, err });
        this.entries.set(sha256, entry);
      },
    );
    this.deleting.set(sha256, deletion);
    await deletion;
    this.deleting.delete(sha256);
  }
}
