/**
 * One upstream download into the cache, read by every client that wants the file while it
 * arrives (the first included): readers follow the bytes written so far, so a thousand clients
 * cost one upstream fetch and each gets its first byte as soon as the origin sends it.
 *
 * The newest bytes stay in memory (`recent`, a few blocks): readers keeping up with the fill,
 * which is nearly all of them since the origin is the slow side, share those blocks instead of
 * each reading its own copy back from the staging file (100 readers: 100 reads of every byte).
 *
 * Nothing unverified is handed out whole: the last byte is released only after the size and
 * sha256 matched what the origin's index lists. A fill whose bytes differ fails, cutting every
 * reader off one byte short, and its staging copy is dropped. Readers never abort a fill.
 */
import type { BlobStore, BlobWriter } from '../blob/store.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import { openUrl, withoutSecrets, type FetchOptions } from '../remote/fetch.ts';
import type { ListedFile } from './origin-index.ts';

type State = 'filling' | 'committing' | 'stored' | 'failed';

/** Bytes per block of `recent`: also the most a reader is handed at once. */
const blockSize = 256 * 1024;
/** Blocks kept: readers this close behind the fill read memory, not the staging file. */
const recentBlocks = 8;

export class Fill {
  readonly sha256: string;
  readonly size: number;
  /** Settles when the file is stored (or the fill failed); never rejects, see `failure`. */
  readonly finished: Promise<void>;
  /** Resolves when the origin answered 200, rejects when it answered anything else or not at all. */
  readonly answered: Promise<void>;
  private onAnswer!: { resolve: () => void; reject: (err: unknown) => void };
  private state: State = 'filling';
  private written = 0;
  private writer: BlobWriter | undefined;
  private failure: Error | undefined;
  /** Readers waiting until `until` bytes were written (or the state changed). */
  private wake: { until: number; resolve: () => void }[] = [];
  /** Reads of the staging copy in progress: the commit waits for them (it closes that copy). */
  private reading = 0;
  private readsDrained: (() => void) | undefined;
  private readonly stopper = new AbortController();
  /**
   * The last blocks of the file as written so far: block `firstRecent + i` holds bytes from
   * `(firstRecent + i) * blockSize`. A block's filled bytes never change, so readers get views.
   */
  private recent: Buffer[] = [];
  private firstRecent = 0;

  /** Starts downloading `url` into `blobs`; the file must match `expected`. */
  constructor(blobs: BlobStore, url: URL, expected: ListedFile, fetchOptions: FetchOptions) {
    this.sha256 = expected.sha256;
    this.size = expected.size;
    this.answered = new Promise((resolve, reject) => (this.onAnswer = { resolve, reject }));
    // Nobody may be waiting for it (a reader that came late): that is not an unhandled failure.
    this.answered.catch(() => {});
    this.finished = this.run(blobs, url, { ...fetchOptions, signal: this.stopper.signal }).catch((err: unknown) => {
      this.failure = err instanceof Error ? err : new Error(String(err));
      this.onAnswer.reject(this.failure);
      this.set('failed');
    });
  }

  /** Stops the download (the server is closing): readers are cut off, nothing is kept. */
  stop(): Promise<void> {
    this.stopper.abort(new AppError(ErrorCodes.unavailable, 'the server is stopping'));
    return this.finished;
  }

  /** The error that ended the fill, once it failed. */
  get error(): Error | undefined {
    return this.failure;
  }

  /**
   * Up to `maxLength` bytes at `position`, waiting until at least `atLeast` of them arrived (or
   * all the file can give before its verdict); 'stored' once the file is in the store (read it
   * there); throws when the fill failed. Readers following the fill ask for more than a byte:
   * woken per upstream chunk (16 KiB), 100 readers made 50,000 socket writes a second.
   */
  async read(position: number, maxLength: number, atLeast = 1): Promise<Uint8Array | 'stored'> {
    // The last byte waits for the verdict: it is read from the stored file.
    const enough = Math.min(position + Math.min(atLeast, maxLength), this.size - 1);
    for (;;) {
      if (this.state === 'failed') throw this.failure!;
      if (this.state === 'stored') return 'stored';
      const available = this.state === 'filling' ? Math.min(this.written, this.size - 1) : 0;
      if (position < available && available >= enough) {
        const kept = this.keptAt(position, Math.min(maxLength, available - position));
        if (kept) return kept;
        this.reading++;
        try {
          return await this.writer!.readAt(position, Math.min(maxLength, available - position));
        } finally {
          if (--this.reading === 0) this.readsDrained?.();
        }
      }
      await new Promise<void>((resolve) => this.wake.push({ until: Math.max(enough, position + 1), resolve }));
    }
  }

  /** The bytes at `position` from `recent` (up to the end of their block), if still there. */
  private keptAt(position: number, maxLength: number): Buffer | undefined {
    const block = this.recent[Math.floor(position / blockSize) - this.firstRecent];
    if (!block) return undefined;
    const offset = position % blockSize;
    return block.subarray(offset, offset + maxLength);
  }

  /** Copies `chunk`, which follows the bytes written so far, into `recent`. */
  private keep(chunk: Uint8Array) {
    for (let at = 0; at < chunk.byteLength; ) {
      const position = this.written + at;
      const offset = position % blockSize;
      if (offset === 0) {
        this.recent.push(Buffer.allocUnsafeSlow(blockSize));
        if (this.recent.length > recentBlocks) {
          this.recent.shift();
          this.firstRecent++;
        }
      }
      const copied = Math.min(blockSize - offset, chunk.byteLength - at);
      this.recent.at(-1)!.set(chunk.subarray(at, at + copied), offset);
      at += copied;
    }
  }

  private set(state: State) {
    this.state = state;
    this.notify(true);
  }

  private notify(all = false) {
    const waiting = this.wake;
    this.wake = [];
    for (const waiter of waiting) {
      if (all || this.written >= waiter.until) waiter.resolve();
      else this.wake.push(waiter);
    }
  }

  private async run(blobs: BlobStore, url: URL, fetchOptions: FetchOptions): Promise<void> {
    const res = await openUrl(url, fetchOptions);
    if (res.statusCode !== 200) {
      res.resume();
      throw new AppError(ErrorCodes.unavailable, `the origin answered HTTP ${res.statusCode} for ${withoutSecrets(url.href)}`);
    }
    const writer = (this.writer = await blobs.createWriter());
    this.onAnswer.resolve();
    try {
      for await (const chunk of res as AsyncIterable<Uint8Array>) {
        if (this.written + chunk.byteLength > this.size) {
          throw new AppError(ErrorCodes.upstreamCorrupt, `${withoutSecrets(url.href)} is larger than the ${this.size} bytes the origin's index lists`);
        }
        await writer.write(chunk);
        this.keep(chunk);
        this.written += chunk.byteLength;
        this.notify();
      }
      if (this.written !== this.size) throw new AppError(ErrorCodes.upstreamCorrupt, `${withoutSecrets(url.href)} is truncated: ${this.written} of ${this.size} bytes`);
      const digest = await writer.digest();
      if (digest !== this.sha256) throw new AppError(ErrorCodes.upstreamCorrupt, `Hash mismatch for ${withoutSecrets(url.href)}: ${digest} != ${this.sha256}`);
      // Committing closes the staging copy: readers wait meanwhile and then read the stored file.
      this.set('committing');
      if (this.reading > 0) await new Promise<void>((resolve) => (this.readsDrained = resolve));
      await writer.commit(this.sha256);
      this.set('stored');
    } catch (err) {
      res.destroy();
      await writer.abort();
      throw err;
    } finally {
      // Readers now read the stored file, or nothing.
      this.recent = [];
    }
  }
}
