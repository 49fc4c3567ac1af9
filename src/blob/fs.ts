/**
 * The embedded blob store: files under DIR/sha256/ab/abcdef..., staged in DIR/staging and
 * published by rename, so a crash leaves at worst a staging file that cleanStaging() removes.
 */
import { ensureDirectory } from '../directories.ts';
import { randomUUID } from 'node:crypto';
import { closeSync, createReadStream, openSync, readSync, open as openCallback, read as readCallback, close as closeCallback, fstat as fstatCallback } from 'node:fs';
import { promisify } from '../builtins/util.ts';
import { mkdir, open, opendir, readdir, rename, rm, stat, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { AppError, ErrorCodes, notFound } from '../errors.ts';
import { processAlive } from '../processes.ts';
import { isSha256 } from '../domain/fingerprint.ts';
import { OffThreadHash } from '../hashing/off-thread-hash.ts';
import { outlet } from '../transfer/write-out.ts';
import type { BlobInfo, BlobStore, BlobWriter, ByteRange, OpenedBlob, StoredBlob } from './store.ts';

export class FsBlobStore implements BlobStore {
  readonly root: string;
  private readonly staging: string;
  private readonly objects: string;

  constructor(root: string) {
    this.root = root;
    this.staging = join(root, 'staging');
    this.objects = join(root, 'sha256');
  }

  async init(): Promise<void> {
    await ensureDirectory(this.staging);
    await ensureDirectory(this.objects);
  }

  pathOf(sha256: string): string {
    if (!isSha256(sha256)) throw new AppError(ErrorCodes.invalidArgument, `not a sha256: ${sha256}`);
    return join(this.objects, sha256.slice(0, 2), sha256);
  }

  async createWriter(): Promise<BlobWriter> {
    // The writer's pid in the name lets the collector tell a dead writer's leftovers at once.
    const stagingPath = join(this.staging, `${process.pid}-${randomUUID()}.part`);
    const handle = await open(stagingPath, 'wx+').catch((err: unknown) => {
      throw diskError(err);
    });
    return new FsBlobWriter(handle, stagingPath, (sha) => this.pathOf(sha), this.objects);
  }

  async size(sha256: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(sha256))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async openRead(sha256: string, range?: ByteRange): Promise<Readable> {
    const path = this.pathOf(sha256);
    // Open first so a missing blob is an error here, before any HTTP header has been sent.
    // A plain descriptor, not a FileHandle: streams over it read faster and close it themselves.
    const fd = await openFd(path).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? notFound(`blob ${sha256} is missing from the store`) : err;
    });
    return createReadStream('', { fd, autoClose: true, highWaterMark: 512 << 10, ...(range ?? {}) });
  }

  async openCopy(sha256: string, range?: ByteRange): Promise<OpenedBlob> {
    const path = this.pathOf(sha256);
    const missing = (err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? notFound(`blob ${sha256} is missing from the store`) : err;
    };
    if (range && range.end - range.start < smallRead) {
      try {
        return readSmall(path, range);
      } catch (err) {
        return missing(err as NodeJS.ErrnoException);
      }
    }
    const fd = await openFd(path).catch(missing);
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await closeFd(fd).catch(() => {});
    };
    return {
      close,
      copyTo: async (out) => {
        try {
          const end = range ? range.end + 1 : (await fstatFd(fd)).size;
          await copyRange(fd, range?.start ?? 0, end, out);
        } finally {
          await close();
        }
      },
    };
  }

  async delete(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }

  async touch(sha256: string, when: Date): Promise<void> {
    try {
      await utimes(this.pathOf(sha256), when, when);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`blob ${sha256} is missing from the store`);
      throw err;
    }
  }

  async *list(): AsyncIterable<StoredBlob> {
    for (const prefix of await readdir(this.objects)) {
      const dir = await opendir(join(this.objects, prefix));
      for await (const entry of dir) {
        if (!isSha256(entry.name)) continue;
        const info = await stat(join(this.objects, prefix, entry.name));
        yield { sha256: entry.name, size: info.size, modifiedMs: info.mtimeMs };
      }
    }
  }

  /**
   * Another process may be importing right now: a staging file is a leftover once its writer
   * (named in the file) is no longer alive, or, whatever the name says, once it has been idle
   * for `idleMs` (a pid can be reused, and another host may share the directory).
   */
  async cleanStaging(idleMs = 10 * 60_000): Promise<void> {
    for (const name of await readdir(this.staging)) {
      const path = join(this.staging, name);
      const info = await stat(path).catch(() => undefined);
      if (!info) continue;
      const pid = /^(\d+)-/.exec(name)?.[1];
      const writerGone = pid !== undefined && Number(pid) !== process.pid && !processAlive(Number(pid));
      if (writerGone || Date.now() - info.mtimeMs > idleMs) await rm(path, { force: true });
    }
  }
}

/** A full disk is the catalogue's disk_full; other errors go on as they are. */
function diskError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new AppError(ErrorCodes.diskFull, 'The disk holding the blob store is full; nothing was stored', { hint: 'Free some space, then try again.', cause: err });
  return err;
}

class FsBlobWriter implements BlobWriter {
  private readonly stagingPath: string;
  size = 0;
  /** On another thread: the thread writing never hashes (see hashing/off-thread-hash.ts). */
  private readonly hash = new OffThreadHash();
  private readonly handle: FileHandle;
  private readonly pathOf: (sha: string) => string;
  private closed = false;
  private sha256: Promise<string> | undefined;
  private readonly objects: string;
  private flushedAt = 0;
  private flushing: Promise<void> = Promise.resolve();
  /** A failed background flush: the bytes may not be on disk, so the blob must not be committed. */
  private flushError: unknown;

  constructor(handle: FileHandle, stagingPath: string, pathOf: (sha: string) => string, objects: string) {
    this.handle = handle;
    this.stagingPath = stagingPath;
    this.pathOf = pathOf;
    this.objects = objects;
  }

  digest(): Promise<string> {
    this.sha256 ??= this.hash.digest();
    return this.sha256;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.sha256 !== undefined) throw new Error('write after digest');
    await this.hash.update(chunk);
    this.size += chunk.byteLength;
    if (this.flushError !== undefined) throw diskError(this.flushError);
    try {
      let offset = 0;
      while (offset < chunk.byteLength) {
        const { bytesWritten } = await this.handle.write(chunk, offset);
        offset += bytesWritten;
      }
    } catch (err) {
      throw diskError(err);
    }
    // Flush to disk as we go (on another thread), so the final fsync has little left to do.
    if (this.size - this.flushedAt >= flushEvery) {
      this.flushedAt = this.size;
      this.flushing = this.flushing.then(() => this.handle.datasync()).catch((err: unknown) => {
        this.flushError ??= err;
      });
    }
  }

  async readAt(position: number, length: number): Promise<Uint8Array> {
    if (position < 0 || position + length > this.size) throw new RangeError(`cannot read ${length} bytes at ${position} of ${this.size}`);
    const buffer = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(buffer, done, length - done, position + done);
      if (bytesRead === 0) throw new Error('the staged file is shorter than what was written');
      done += bytesRead;
    }
    return buffer;
  }

  async withLocalFile<T>(use: (path: string) => Promise<T>): Promise<T> {
    return use(this.stagingPath);
  }

  async commit(expectedSha256?: string): Promise<BlobInfo> {
    const sha256 = await this.digest();
    try {
      if (expectedSha256 !== undefined && expectedSha256 !== sha256) {
        throw new AppError(ErrorCodes.integrity, `sha256 mismatch: got ${sha256}, expected ${expectedSha256}`);
      }
      await this.flushing;
      if (this.flushError !== undefined) throw diskError(this.flushError);
      // Committed now: the collector's sweep of old files and a cache's last-use order read the mtime.
      const now = new Date();
      await this.handle.utimes(now, now);
      await this.handle.sync().catch((err: unknown) => {
        throw diskError(err);
      });
      await this.close();
      const target = this.pathOf(sha256);
      const dir = join(target, '..');
      // A new prefix directory must itself be durable in its parent, or a crash can lose the blob.
      if (await ensureDirectory(dir)) await syncDirectory(this.objects);
      // Always the bytes just verified, even over a stored file of that name: it should hold the
      // same bytes, but one damaged on disk is repaired only by replacing it. The rename is
      // atomic: a reader of the old file keeps reading its own.
      await rename(this.stagingPath, target);
      await syncDirectory(dir);
      return { sha256, size: this.size };
    } finally {
      await this.abort();
    }
  }

  async abort(): Promise<void> {
    this.hash.drop();
    await this.close();
    await rm(this.stagingPath, { force: true });
  }

  private async close() {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

const flushEvery = 64 * 1024 * 1024;
const openFdFlags = promisify(openCallback);
const openFd = (path: string) => openFdFlags(path, 'r');
const readFd = promisify(readCallback);
const closeFd = promisify(closeCallback);
const fstatFd = promisify(fstatCallback);
const copyChunk = 768 * 1024;

/**
 * Ranges up to this size are read at once, synchronously: open, read and close of a page-cached
 * file take a few µs each, while each trip through libuv's thread pool cost this (event loop)
 * thread ~20 µs here, three per download: 40% of a 4 KiB download's CPU time in a profile
 * (bench/counting.ts serves one). nginx reads the same blocking way. Larger ranges stream from
 * the thread pool, where a slow disk cannot stall the other connections for long.
 */
const smallRead = 64 * 1024;

/** The range, read now; a file shorter than its record fails the copy, as a streamed one does. */
function readSmall(path: string, range: ByteRange): OpenedBlob {
  const buffer = Buffer.allocUnsafe(range.end - range.start + 1);
  let done = 0;
  const fd = openSync(path, 'r');
  try {
    for (let n = -1; done < buffer.length && n !== 0; done += n) n = readSync(fd, buffer, done, buffer.length - done, range.start + done);
  } finally {
    closeSync(fd);
  }
  return {
    close: async () => {},
    copyTo: async (out) => {
      if (done < buffer.length) throw new Error('the blob is shorter than its record');
      const to = outlet(out);
      try {
        await to.write(buffer);
      } finally {
        to.release();
      }
    },
  };
}

/**
 * Two buffers, alternating: one is being read into while the other is being sent. A buffer is
 * reused only once its write has completed, so a download costs 1 MiB of memory however long
 * it is, and allocates nothing while it runs.
 */
async function copyRange(fd: number, start: number, end: number, out: Writable): Promise<void> {
  // No bigger than the range: 1 MiB allocated (and later freed) for a 4 KiB file cost more than
  // the rest of its download. A range of one chunk or less needs one buffer.
  const size = Math.max(1, Math.min(copyChunk, end - start));
  const first = Buffer.allocUnsafe(size);
  const buffers = [first, end - start > size ? Buffer.allocUnsafe(size) : first];
  let sending: Promise<void> = Promise.resolve();
  const to = outlet(out);
  try {
    for (let position = start, turn = 0; position < end; turn ^= 1) {
      const buffer = buffers[turn]!;
      const { bytesRead } = await readFd(fd, buffer, 0, Math.min(copyChunk, end - position), position);
      if (bytesRead === 0) throw new Error('the blob is shorter than its record');
      position += bytesRead;
      await sending;
      sending = to.write(buffer.subarray(0, bytesRead));
    }
    await sending;
  } finally {
    to.release();
  }
}

async function syncDirectory(dir: string) {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
