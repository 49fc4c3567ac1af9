/**
 * Content-addressed bytes. Every blob is named by its sha256, computed once while it is written;
 * nothing is visible under that name until commit() has made it durable.
 *
 * `BlobStore` is what the rest of wharf uses; `Blobs` is its one implementation, over any
 * `BlobDriver` (driver.ts): it owns what every driver would otherwise do its own way (the names,
 * hashing on the hash threads, the check against the sha256 expected, the errors users see,
 * timing), so that a driver only moves bytes.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import { AppError, ErrorCodes, notFound } from '../errors.ts';
import { isSha256 } from '../domain/fingerprint.ts';
import { OffThreadHash } from '../hashing/off-thread-hash.ts';
import { BlobDriverError, type BlobDriver, type UploadDriver } from './driver.ts';

export interface BlobInfo {
  sha256: string;
  size: number;
}

/**
 * A blob being written. It is a stream to its user: bytes go in, are hashed once on the way, and
 * can be read back; where they are kept is the driver's business.
 */
export interface BlobWriter {
  /** Names the upload: `BlobStore.resumeWriter(id)` goes on with it, from any process. */
  readonly id: string;
  readonly size: number;
  /** The writer may still read `chunk` after this resolves (to hash it): do not change it. */
  write(chunk: Uint8Array): Promise<void>;
  /** Reads back bytes already written (format checks that look at tables, such as an xz index). */
  readAt(position: number, length: number): Promise<Uint8Array>;
  /**
   * Lends a local file holding the bytes written so far to `use`, for a tool that needs one
   * (qemu-img): only for the duration of the call. A remote driver would spool a copy.
   */
  withLocalFile<T>(use: (path: string) => Promise<T>): Promise<T>;
  /** The sha256 of everything written (computed as it was written); no more writes after this. */
  digest(): Promise<string>;
  /**
   * Makes the blob durable under its sha256; fails (and aborts) if it is not `expectedSha256`.
   * A blob already stored under that name is replaced, atomically (readers that opened it keep
   * their bytes): it should hold the same bytes, but this is how one damaged in storage is
   * repaired.
   */
  commit(expectedSha256?: string): Promise<BlobInfo>;
  /** Forgets everything written; safe to call after commit or twice. */
  abort(): Promise<void>;
  /**
   * Stops writing here and leaves the upload as it is, for `BlobStore.resumeWriter(id)` (a
   * request that ends with the upload unfinished); this writer can do nothing more.
   */
  suspend(): Promise<void>;
}

export interface OpenedBlob {
  /** Writes the blob, or the range, to `out`, then releases it (also when the copy fails). */
  copyTo(out: Writable): Promise<void>;
  /** Releases it without copying; harmless after copyTo. */
  close(): Promise<void>;
}

export interface ByteRange {
  /** Inclusive, as in HTTP. */
  start: number;
  end: number;
}

export interface BlobStore {
  createWriter(): Promise<BlobWriter>;
  /** The writer of upload `id` (left by this process or another), with what it had written; `not_found` when there is none. */
  resumeWriter(id: string): Promise<BlobWriter>;
  size(sha256: string): Promise<number | undefined>;
  openRead(sha256: string, range?: ByteRange): Promise<Readable>;
  /**
   * Opens the blob (failing before any byte is sent if it is missing) for the serving path, which
   * may reuse its buffers. The opened blob holds a resource until it was copied or closed.
   */
  openCopy(sha256: string, range?: ByteRange): Promise<OpenedBlob>;
  /**
   * Lends a local file holding the blob to `use`, for a tool that needs one (xdelta3 seeks in its
   * source), for the duration of the call: the stored file itself where the store keeps files
   * (never to be written), else a copy spooled for it. `not_found` if there is no such blob.
   */
  withLocalFile<T>(sha256: string, use: (path: string) => Promise<T>): Promise<T>;
  delete(sha256: string): Promise<void>;
  list(): AsyncIterable<BlobInfo>;
  /** Removes uploads left by writers that died (those idle for longer than `idleMs`). */
  cleanStaging(idleMs?: number): Promise<void>;
  /**
   * A short-lived URL that reads the blob without wharf (an S3 presigned GET, `blob_redirect`),
   * valid for `ttlSeconds`; undefined when the store hands out none, or none for this blob yet
   * (stored in pieces: `consolidate` it).
   */
  redirectUrl(sha256: string, ttlSeconds: number): Promise<string | undefined>;
  /** Stores the blob so that `redirectUrl` can name it, where the store needs that; true when it changed anything. */
  consolidate(sha256: string): Promise<boolean>;
  /** Lets go of what the store holds open (connections); nothing may be called afterwards. */
  close(): Promise<void>;
}

/** Time spent in the driver, per operation (opening a read, not the copy that follows). */
export interface BlobTiming {
  count: number;
  seconds: number;
}

/** How long an upload may sit idle before it is taken for a dead writer's. */
export const uploadIdleMs = 10 * 60_000;

/** Bytes read back at a time when a resumed upload's hash is rebuilt. */
const rehashChunk = 1 << 20;

/** How a writer hashes: on the hash threads (every real driver), or on this thread (memory, tests). */
interface Hasher {
  update(chunk: Uint8Array): Promise<void>;
  digest(): Promise<string>;
  drop(): void;
}

/** sha256 on this thread: for the memory driver, whose tests feed many small chunks. */
class InlineHash implements Hasher {
  private readonly hash = createHash('sha256');
  async update(chunk: Uint8Array): Promise<void> {
    this.hash.update(chunk);
  }
  async digest(): Promise<string> {
    return this.hash.digest('hex');
  }
  drop(): void {}
}

/** The driver's failures as the catalogue's errors. */
function mapped(err: unknown, missing: () => AppError): unknown {
  if (!(err instanceof BlobDriverError)) return err;
  if (err.kind === 'missing') return Object.assign(missing(), { cause: err });
  return new AppError(ErrorCodes.diskFull, 'The storage holding the blob store is full; nothing was stored', { hint: 'Free some space, then try again.', cause: err });
}

export class Blobs implements BlobStore {
  private readonly driver: BlobDriver;
  private readonly hasher: () => Hasher;
  /** Per operation, for /metrics. */
  readonly timings = new Map<string, BlobTiming>();

  /** `hashing`: 'threads' (the thread moving the bytes never hashes them) or 'inline'. */
  constructor(driver: BlobDriver, options: { hashing?: 'threads' | 'inline' } = {}) {
    this.driver = driver;
    this.hasher = options.hashing === 'inline' ? () => new InlineHash() : () => new OffThreadHash();
  }

  /** A blob's name: a sha256, lowercase hex, nothing else (never a path). */
  protected name(sha256: string): string {
    if (!isSha256(sha256)) throw new AppError(ErrorCodes.invalidArgument, `not a sha256: ${sha256}`);
    return sha256;
  }

  private async timed<T>(op: string, run: () => Promise<T>, missing: () => AppError = () => notFound('not found in the blob store')): Promise<T> {
    const started = performance.now();
    try {
      return await run();
    } catch (err) {
      throw mapped(err, missing);
    } finally {
      const timing = this.timings.get(op) ?? { count: 0, seconds: 0 };
      timing.count++;
      timing.seconds += (performance.now() - started) / 1000;
      this.timings.set(op, timing);
    }
  }

  private missingBlob = (sha256: string) => () => notFound(`blob ${sha256} is missing from the store`);

  async createWriter(): Promise<BlobWriter> {
    return new HashingWriter(await this.timed('upload', () => this.driver.startUpload()), this.hasher());
  }

  async resumeWriter(id: string): Promise<BlobWriter> {
    const upload = await this.timed('resume', () => this.driver.resumeUpload(id), () => notFound(`No upload "${id.slice(0, 80)}" is in progress`));
    // The hash's state stayed with the writer that started it: rebuilt from the bytes so far.
    const hash = this.hasher();
    try {
      for (let at = 0; at < upload.size; at += rehashChunk) await hash.update(await upload.readAt(at, Math.min(rehashChunk, upload.size - at)));
    } catch (err) {
      hash.drop();
      throw mapped(err, () => notFound(`upload ${id.slice(0, 80)} lost its bytes`));
    }
    return new HashingWriter(upload, hash);
  }

  async size(sha256: string): Promise<number | undefined> {
    const name = this.name(sha256);
    return this.timed('stat', () => this.driver.stat(name));
  }

  async openRead(sha256: string, range?: ByteRange): Promise<Readable> {
    const name = this.name(sha256);
    return this.timed('read', () => this.driver.read(name, range), this.missingBlob(sha256));
  }

  async openCopy(sha256: string, range?: ByteRange): Promise<OpenedBlob> {
    const name = this.name(sha256);
    return this.timed('read', () => this.driver.copy(name, range), this.missingBlob(sha256));
  }

  async withLocalFile<T>(sha256: string, use: (path: string) => Promise<T>): Promise<T> {
    const name = this.name(sha256);
    const local = await this.driver.localPath?.(name);
    if (local) return use(local);
    const dir = await mkdtemp(join(tmpdir(), 'wharf-blob-'));
    try {
      const path = join(dir, sha256);
      await pipeline(await this.openRead(sha256), createWriteStream(path));
      return await use(path);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async delete(sha256: string): Promise<void> {
    const name = this.name(sha256);
    return this.timed('delete', () => this.driver.delete(name));
  }

  async *list(): AsyncIterable<BlobInfo> {
    // Whatever else the storage holds is not a blob of this store.
    for await (const { name, size } of this.driver.list()) if (isSha256(name)) yield { sha256: name, size };
  }

  cleanStaging(idleMs = uploadIdleMs): Promise<void> {
    return this.timed('clean', () => this.driver.cleanUploads(idleMs));
  }

  async redirectUrl(sha256: string, ttlSeconds: number): Promise<string | undefined> {
    const name = this.name(sha256);
    const { driver } = this;
    return driver.redirectUrl ? this.timed('redirect', () => driver.redirectUrl!(name, ttlSeconds), this.missingBlob(sha256)) : undefined;
  }

  async consolidate(sha256: string): Promise<boolean> {
    const name = this.name(sha256);
    const { driver } = this;
    return driver.consolidate ? this.timed('consolidate', () => driver.consolidate!(name), this.missingBlob(sha256)) : false;
  }

  async close(): Promise<void> {
    await this.driver.close?.();
  }
}

/** The writer of every driver: the driver's upload, hashed on the way in, checked at commit. */
class HashingWriter implements BlobWriter {
  private readonly upload: UploadDriver;
  private readonly hash: Hasher;
  private sha256: Promise<string> | undefined;

  constructor(upload: UploadDriver, hash: Hasher) {
    this.upload = upload;
    this.hash = hash;
  }

  get id(): string {
    return this.upload.id;
  }

  get size(): number {
    return this.upload.size;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.sha256 !== undefined) throw new Error('write after digest');
    await this.hash.update(chunk);
    try {
      await this.upload.append(chunk);
    } catch (err) {
      // What was written is not all there: this writer can only be aborted now.
      this.sha256 = Promise.reject(err);
      this.sha256.catch(() => {});
      this.hash.drop();
      throw mapped(err, () => notFound('the upload was cleaned up while it was written'));
    }
  }

  async readAt(position: number, length: number): Promise<Uint8Array> {
    if (position < 0 || position + length > this.size) throw new RangeError(`cannot read ${length} bytes at ${position} of ${this.size}`);
    return this.upload.readAt(position, length);
  }

  withLocalFile<T>(use: (path: string) => Promise<T>): Promise<T> {
    return this.upload.withLocalFile(use);
  }

  digest(): Promise<string> {
    this.sha256 ??= this.hash.digest();
    return this.sha256;
  }

  async commit(expectedSha256?: string): Promise<BlobInfo> {
    try {
      const sha256 = await this.digest();
      if (expectedSha256 !== undefined && expectedSha256 !== sha256) {
        throw new AppError(ErrorCodes.integrity, `sha256 mismatch: got ${sha256}, expected ${expectedSha256}`);
      }
      const size = this.size;
      await this.upload.publish(sha256).catch((err: unknown) => {
        throw mapped(err, () => notFound('the upload was cleaned up before it was stored'));
      });
      return { sha256, size };
    } finally {
      await this.abort();
    }
  }

  async abort(): Promise<void> {
    this.hash.drop();
    await this.upload.abort();
  }

  async suspend(): Promise<void> {
    this.sha256 ??= Promise.reject(new Error('the writer was suspended'));
    this.sha256.catch(() => {});
    this.hash.drop();
    await this.upload.suspend();
  }
}
