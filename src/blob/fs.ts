/**
 * The embedded blob driver: files under DIR/sha256/ab/abcdef..., uploads staged in DIR/staging
 * and published by rename, so a crash leaves at worst a staging file that cleanUploads() removes.
 * `FsBlobStore` is the store over it (store.ts `Blobs`), with what only local files can offer a
 * cache: a last use kept as the file's modification time (`touch`, `lastUses`).
 */
import { ensureDirectory } from '../directories.ts';
import { randomUUID } from 'node:crypto';
import { closeSync, createReadStream, openSync, readSync, open as openCallback, read as readCallback, close as closeCallback, fstat as fstatCallback } from 'node:fs';
import { promisify } from '../builtins/util.ts';
import { open, opendir, readdir, rename, rm, stat, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { notFound } from '../errors.ts';
import { processAlive } from '../processes.ts';
import { isSha256 } from '../domain/fingerprint.ts';
import { outlet } from '../transfer/write-out.ts';
import { BlobDriverError, type BlobDriver, type UploadDriver } from './driver.ts';
import { Blobs, type ByteRange, type OpenedBlob } from './store.ts';

/** A missing file as the driver's `missing`, a full disk as `full`; anything else as it is. */
function driverError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new BlobDriverError('missing', (err as Error).message, { cause: err });
  if (code === 'ENOSPC' || code === 'EDQUOT') return new BlobDriverError('full', (err as Error).message, { cause: err });
  return err;
}

const rethrow = (err: unknown): never => {
  throw driverError(err);
};

export class FsBlobDriver implements BlobDriver {
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

  /** Where `name` (a sha256, checked by the store) is kept. */
  pathOf(name: string): string {
    return join(this.objects, name.slice(0, 2), name);
  }

  async localPath(name: string): Promise<string | undefined> {
    const path = this.pathOf(name);
    return (await stat(path).catch(() => undefined))?.isFile() ? path : undefined;
  }

  async startUpload(): Promise<UploadDriver> {
    const id = randomUUID();
    // The writer's pid in the name lets the collector tell a dead writer's leftovers at once
    // (staging files are this host's own); the id lets another process go on with it.
    const path = join(this.staging, `${process.pid}-${id}.part`);
    const handle = await open(path, 'wx+').catch(rethrow);
    return new FsUpload(id, handle, path, 0, (name) => this.pathOf(name), this.objects);
  }

  async resumeUpload(id: string): Promise<UploadDriver> {
    const left = /^[0-9a-f-]{36}$/.test(id) ? (await readdir(this.staging)).find((name) => name.endsWith(`-${id}.part`)) : undefined;
    if (!left) throw new BlobDriverError('missing', `no upload ${id}`);
    // Renamed to this process, so that cleaning staging takes it for a live writer's.
    const path = join(this.staging, `${process.pid}-${id}.part`);
    await rename(join(this.staging, left), path).catch(rethrow);
    const handle = await open(path, 'r+').catch(rethrow);
    return new FsUpload(id, handle, path, (await handle.stat()).size, (name) => this.pathOf(name), this.objects);
  }

  async stat(name: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(name))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async read(name: string, range?: ByteRange): Promise<Readable> {
    // Open first so a missing blob is an error here, before any HTTP header has been sent.
    // A plain descriptor, not a FileHandle: streams over it read faster and close it themselves.
    const fd = await openFd(this.pathOf(name)).catch(rethrow);
    return createReadStream('', { fd, autoClose: true, highWaterMark: 512 << 10, ...(range ?? {}) });
  }

  async copy(name: string, range?: ByteRange): Promise<OpenedBlob> {
    const path = this.pathOf(name);
    if (range && range.end - range.start < smallRead) {
      try {
        return readSmall(path, range);
      } catch (err) {
        return rethrow(err);
      }
    }
    const fd = await openFd(path).catch(rethrow);
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

  async delete(name: string): Promise<void> {
    await rm(this.pathOf(name), { force: true });
  }

  async *list(): AsyncIterable<{ name: string; size: number; modifiedMs: number }> {
    for (const prefix of await readdir(this.objects)) {
      const dir = await opendir(join(this.objects, prefix));
      for await (const entry of dir) {
        const info = await stat(join(this.objects, prefix, entry.name)).catch(() => undefined);
        if (info?.isFile()) yield { name: entry.name, size: info.size, modifiedMs: info.mtimeMs };
      }
    }
  }

  /**
   * Another process may be importing right now: a staging file is a leftover once its writer
   * (named in the file) is no longer alive, or, whatever the name says, once it has been idle
   * for `idleMs` (a pid can be reused).
   */
  async cleanUploads(idleMs: number): Promise<void> {
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

/** A blob's last use, as a cache keeps it (least recently used out first). */
export interface BlobUse {
  sha256: string;
  size: number;
  lastUseMs: number;
}

/**
 * The blob store on local files. A mirror's cache also keeps each file's last use in it, as the
 * file's modification time: a cache is one host's, and its files are its own.
 */
export class FsBlobStore extends Blobs {
  private readonly files: FsBlobDriver;

  constructor(root: string) {
    const files = new FsBlobDriver(root);
    super(files);
    this.files = files;
  }

  get root(): string {
    return this.files.root;
  }

  init(): Promise<void> {
    return this.files.init();
  }

  pathOf(sha256: string): string {
    return this.files.pathOf(this.name(sha256));
  }

  /** Records a use of the blob at `when`; `not_found` when it is missing. */
  async touch(sha256: string, when: Date): Promise<void> {
    try {
      await utimes(this.pathOf(sha256), when, when);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`blob ${sha256} is missing from the store`);
      throw err;
    }
  }

  /** Every blob with its last use (its commit, or the last `touch`). */
  async *lastUses(): AsyncIterable<BlobUse> {
    for await (const { name, size, modifiedMs } of this.files.list()) if (isSha256(name)) yield { sha256: name, size, lastUseMs: modifiedMs };
  }
}

class FsUpload implements UploadDriver {
  readonly id: string;
  private readonly stagingPath: string;
  size: number;
  private readonly handle: FileHandle;
  private readonly pathOf: (name: string) => string;
  private readonly objects: string;
  private closed = false;
  private flushedAt: number;
  private flushing: Promise<void> = Promise.resolve();
  /** A failed background flush: the bytes may not be on disk, so the upload must not be published. */
  private flushError: unknown;

  constructor(id: string, handle: FileHandle, stagingPath: string, size: number, pathOf: (name: string) => string, objects: string) {
    this.id = id;
    this.handle = handle;
    this.stagingPath = stagingPath;
    this.size = size;
    this.flushedAt = size;
    this.pathOf = pathOf;
    this.objects = objects;
  }

  async append(chunk: Uint8Array): Promise<void> {
    if (this.flushError !== undefined) throw driverError(this.flushError);
    try {
      for (let offset = 0; offset < chunk.byteLength; ) {
        const { bytesWritten } = await this.handle.write(chunk, offset, chunk.byteLength - offset, this.size + offset);
        offset += bytesWritten;
      }
    } catch (err) {
      throw driverError(err);
    }
    this.size += chunk.byteLength;
    // Flush to disk as we go (on another thread), so the final fsync has little left to do.
    if (this.size - this.flushedAt >= flushEvery) {
      this.flushedAt = this.size;
      this.flushing = this.flushing.then(() => this.handle.datasync()).catch((err: unknown) => {
        this.flushError ??= err;
      });
    }
  }

  async readAt(position: number, length: number): Promise<Uint8Array> {
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

  async publish(name: string): Promise<void> {
    await this.flushing;
    if (this.flushError !== undefined) throw driverError(this.flushError);
    // Published now: a collector's sweep and a cache's last-use order read the mtime.
    const now = new Date();
    await this.handle.utimes(now, now);
    await this.handle.sync().catch(rethrow);
    await this.close();
    const target = this.pathOf(name);
    const dir = join(target, '..');
    // A new prefix directory must itself be durable in its parent, or a crash can lose the blob.
    if (await ensureDirectory(dir)) await syncDirectory(this.objects);
    // Always the bytes just verified, even over a stored file of that name: it should hold the
    // same bytes, but one damaged on disk is repaired only by replacing it. The rename is
    // atomic: a reader of the old file keeps reading its own.
    await rename(this.stagingPath, target).catch(rethrow);
    await syncDirectory(dir);
  }

  async abort(): Promise<void> {
    await this.close();
    await rm(this.stagingPath, { force: true });
  }

  async suspend(): Promise<void> {
    await this.flushing;
    await this.handle.sync().catch(() => {});
    await this.close();
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
