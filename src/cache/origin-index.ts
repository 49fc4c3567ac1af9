/**
 * A caching mirror's knowledge of its origin: every file the origin's simplestreams index lists,
 * by path, with the size and sha256 it must have. It is fetched from the origin only (never from
 * another mirror), refreshed on a timer and when a client asks for a path it does not know, and
 * kept on disk, so that a mirror restarted while its origin is down still serves what it holds.
 * A file the origin stops listing stays known for the grace period (clients holding the old
 * index still download it).
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { countedPaths, listedFiles, readIndex } from '../domain/simplestreams-read.ts';
import type { Counted } from '../domain/usage.ts';
import { isSha256 } from '../domain/fingerprint.ts';
import { documentDeadlineMs, getJson, under, withoutSecrets, type FetchOptions } from '../remote/fetch.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import type { Logger } from '../log.ts';

export interface ListedFile {
  sha256: string;
  size: number;
  /** The image a complete download of this path counts for (download statistics), if any. */
  counted?: Counted;
}

interface DroppedFile extends ListedFile {
  droppedAt: number;
}

interface SavedState {
  origin: string;
  checkedAt: number | null;
  files: Record<string, ListedFile>;
  dropped: Record<string, DroppedFile>;
}

export interface OriginIndexOptions {
  /** The origin's base URL, as clients would add it as a remote. */
  origin: string;
  fetch: FetchOptions;
  /** Where the last index read is kept across restarts. */
  statePath: string;
  graceMs: number;
  log: Logger;
  /**
   * Called with each document's path and bytes before they are believed (signature checks);
   * throws to refuse them. `signal` ends what it fetches when the index stops.
   */
  verify?: (path: string, body: Buffer, signal: AbortSignal) => Promise<void>;
  /** The time each document of the origin has to arrive whole (`documentDeadlineMs` by default). */
  documentDeadlineMs?: number;
}

/**
 * The state saved at `statePath`, if it is one: undefined when there is none, and an error naming
 * what is wrong when it is not (a file edited by hand, or written by something else).
 */
async function readSavedState(statePath: string): Promise<SavedState | undefined> {
  let text;
  try {
    text = await readFile(statePath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const saved: unknown = JSON.parse(text);
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const isFile = (v: unknown, dropped: boolean) =>
    isObject(v) &&
    typeof v.sha256 === 'string' &&
    isSha256(v.sha256) &&
    Number.isSafeInteger(v.size) &&
    (v.size as number) >= 0 &&
    (v.counted === undefined || (isObject(v.counted) && typeof v.counted.fingerprint === 'string' && typeof v.counted.product === 'string')) &&
    (!dropped || Number.isFinite(v.droppedAt));
  if (
    !isObject(saved) ||
    typeof saved.origin !== 'string' ||
    !(saved.checkedAt === null || Number.isFinite(saved.checkedAt)) ||
    !isObject(saved.files) ||
    !isObject(saved.dropped) ||
    !Object.values(saved.files).every((f) => isFile(f, false)) ||
    !Object.values(saved.dropped).every((f) => isFile(f, true))
  ) {
    throw new Error('not the state a mirror saves');
  }
  return saved as unknown as SavedState;
}

/** The paths each sha256 had in the index a mirror saved last (for listings), whatever its origin. */
export async function savedPaths(statePath: string): Promise<{ origin: string | undefined; paths: Map<string, string[]> }> {
  const paths = new Map<string, string[]>();
  let saved: SavedState | undefined;
  try {
    saved = await readSavedState(statePath);
  } catch {
    saved = undefined;
  }
  if (!saved) return { origin: undefined, paths };
  for (const [path, file] of [...Object.entries(saved.files), ...Object.entries(saved.dropped)]) {
    paths.set(file.sha256, [...(paths.get(file.sha256) ?? []), path]);
  }
  return { origin: saved.origin, paths };
}

/** A client asking for an unknown path makes the index be fetched again, at most this often. */
const unknownPathRefreshMs = 5_000;
/** How long a request for an unknown path waits for that read before it is answered anyway. */
export const unknownPathWaitMs = 5_000;
const indexPath = 'streams/v1/index.json';

export class OriginIndex {
  private readonly options: OriginIndexOptions;
  private files = new Map<string, ListedFile>();
  private dropped = new Map<string, DroppedFile>();
  private checkedAt: number | null = null;
  /** Products files by path, with their ETag: a 304 reuses what was read. */
  private readonly products = new Map<string, { etag: string; files: Map<string, ListedFile> }>();
  private refreshing: Promise<boolean> | undefined;
  private lastAttempt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Why the last read of the origin's index failed (null after one that worked). */
  private failure: string | null = null;
  /** Ends every read of the origin in progress when the index stops (the server is closing). */
  private readonly stopper = new AbortController();

  constructor(options: OriginIndexOptions) {
    this.options = options;
  }

  get origin(): string {
    return this.options.origin;
  }

  /** When the origin's index was last read successfully (ms since the epoch). */
  get lastChecked(): number | null {
    return this.checkedAt;
  }

  /** Whether there is an index to check files against: the origin's, or the one saved last. */
  get known(): boolean {
    return this.checkedAt !== null || this.files.size > 0;
  }

  /** Why the last read of the origin's index failed; null if it worked (or none ended yet). */
  get lastFailure(): string | null {
    return this.failure;
  }

  /**
   * Reads the state a previous run saved, if it was for the same origin. A state that cannot be
   * read is moved aside (kept for a look) with a warning, and the origin's index is read afresh:
   * it only ever saves a fetch, and must not keep the mirror from starting.
   */
  async load(): Promise<void> {
    let saved: SavedState | undefined;
    try {
      saved = await readSavedState(this.options.statePath);
    } catch (err) {
      const aside = `${this.options.statePath}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      await rename(this.options.statePath, aside).catch(() => {});
      this.options.log.warn('the saved origin index could not be read: moved aside, the origin will be read afresh', { aside, reason: (err as Error).message });
      return;
    }
    if (!saved || saved.origin !== this.options.origin) return;
    this.files = new Map(Object.entries(saved.files));
    this.dropped = new Map(Object.entries(saved.dropped));
    this.checkedAt = saved.checkedAt;
  }

  /** The file at `path` (as the origin names it), while the origin lists it or within the grace period. */
  lookup(path: string): ListedFile | undefined {
    const listed = this.files.get(path);
    if (listed) return listed;
    const dropped = this.dropped.get(path);
    return dropped && Date.now() - dropped.droppedAt <= this.options.graceMs ? dropped : undefined;
  }

  /** Every path known now (listed, or dropped within the grace period) with its file. */
  entries(): [string, ListedFile][] {
    const now = Date.now();
    return [...this.files, ...[...this.dropped].filter(([, f]) => now - f.droppedAt <= this.options.graceMs)];
  }

  /** The sha256s some known path names: the files a cache may keep. */
  wanted(): Set<string> {
    return new Set(this.entries().map(([, f]) => f.sha256));
  }

  /**
   * Like lookup, but an unknown path first makes the index be read again (rate-limited), waited
   * for up to `unknownPathWaitMs`: an origin that is slow or gone delays such an answer, never
   * holds it.
   */
  async find(path: string): Promise<ListedFile | undefined> {
    const known = this.lookup(path);
    if (known || (Date.now() - this.lastAttempt < unknownPathRefreshMs && !this.refreshing)) return known;
    await Promise.race([this.refresh().catch(() => {}), sleep(unknownPathWaitMs, undefined, { ref: false })]);
    return this.lookup(path);
  }

  /** Reads the origin's index again (one read at a time); true when the files changed. */
  refresh(): Promise<boolean> {
    this.refreshing ??= this.read().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  start(intervalMs: number): void {
    const tick = () => {
      this.refresh()
        .catch(() => {})
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, intervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, intervalMs).unref();
  }

  /** Stops the timer and cuts the read in progress: stopping never waits on the origin. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.stopper.abort(new AppError(ErrorCodes.unavailable, 'the server is stopping'));
    await this.refreshing?.catch(() => {});
  }

  private async read(): Promise<boolean> {
    this.lastAttempt = Date.now();
    try {
      const index = await this.document(indexPath);
      if (index === 'unchanged') throw new Error('unreachable: no ETag was sent');
      const next = new Map<string, ListedFile>();
      let paths: string[];
      try {
        paths = readIndex(index.json);
      } catch (err) {
        throw new AppError(ErrorCodes.upstreamCorrupt, `${indexPath} on the origin: ${(err as Error).message}`);
      }
      for (const path of paths) {
        for (const [p, f] of await this.productsFile(path)) next.set(p, f);
      }
      const changed = this.replace(next);
      this.checkedAt = Date.now();
      this.failure = null;
      await this.save();
      return changed;
    } catch (err) {
      this.failure = withoutSecrets((err as Error).message);
      this.options.log.warn('origin index refresh failed', { origin: withoutSecrets(this.options.origin), err });
      throw err;
    }
  }

  private async productsFile(path: string): Promise<Map<string, ListedFile>> {
    const known = this.products.get(path);
    const doc = await this.document(path, known?.etag);
    if (doc === 'unchanged') return known!.files;
    let listed;
    let counted;
    try {
      listed = listedFiles(doc.json);
      counted = countedPaths(doc.json);
    } catch (err) {
      throw new AppError(ErrorCodes.upstreamCorrupt, `${path} on the origin: ${(err as Error).message}`);
    }
    const files = new Map<string, ListedFile>();
    for (const f of listed) {
      const key = f.path.replace(/^\/+/, '');
      try {
        under(this.options.origin, key);
      } catch (err) {
        // A path leaving the origin is never fetched (nor served): the rest of the index still is.
        this.options.log.warn('origin lists a file outside itself', { path: f.path.slice(0, 200), err });
        continue;
      }
      const owner = counted.get(key);
      files.set(key, { sha256: f.sha256, size: f.size, ...(owner ? { counted: owner } : {}) });
    }
    const etag = doc.etag;
    if (etag) this.products.set(path, { etag, files });
    else this.products.delete(path);
    return files;
  }

  /** A document of the origin; 'unchanged' only when `etag` was given and still matches. */
  private async document(path: string, etag?: string): Promise<{ json: unknown; etag: string | undefined } | 'unchanged'> {
    const url = under(this.options.origin, path);
    const signal = this.stopper.signal;
    const answer = await getJson(url, {
      ...this.options.fetch,
      headers: { ...this.options.fetch.headers, ...(etag ? { 'if-none-match': etag } : {}) },
      signal,
      deadlineMs: this.options.documentDeadlineMs ?? documentDeadlineMs,
    });
    if (answer.status === 304 && etag) return 'unchanged';
    if (answer.status !== 200) throw new AppError(ErrorCodes.unavailable, `${withoutSecrets(url.href)}: HTTP ${answer.status}`);
    if (answer.json === undefined) throw new AppError(ErrorCodes.upstreamCorrupt, `${withoutSecrets(url.href)} is not valid JSON`);
    await this.options.verify?.(path, answer.bytes, signal);
    const tag = answer.headers.etag;
    return { json: answer.json, etag: typeof tag === 'string' ? tag : undefined };
  }

  /** Installs a new listing; paths it no longer has start their grace period. */
  private replace(next: Map<string, ListedFile>): boolean {
    const now = Date.now();
    let changed = next.size !== this.files.size;
    for (const [path, file] of this.files) {
      const still = next.get(path);
      if (still?.sha256 === file.sha256 && still.size === file.size) continue;
      changed = true;
      this.dropped.set(path, { ...file, droppedAt: now });
    }
    for (const [path, file] of this.dropped) {
      if (next.has(path) || now - file.droppedAt > this.options.graceMs) this.dropped.delete(path);
    }
    this.files = next;
    return changed;
  }

  private async save(): Promise<void> {
    const state: SavedState = {
      origin: this.options.origin,
      checkedAt: this.checkedAt,
      files: Object.fromEntries(this.files),
      dropped: Object.fromEntries(this.dropped),
    };
    const temporary = `${this.options.statePath}.${process.pid}.tmp`;
    await writeFile(temporary, JSON.stringify(state));
    await rename(temporary, this.options.statePath);
  }
}
