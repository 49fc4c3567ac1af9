/**
 * One pass over an incoming file: every chunk is hashed, staged in the blob store and, for
 * tarballs, fed to the inspector, at the same time. Nothing is committed here: the caller commits
 * the staged blobs only once the whole image checked out, and aborts them otherwise.
 */
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { AppError, ErrorCodes, invalidImage } from '../errors.ts';
import type { BlobWriter, BlobStore } from '../blob/store.ts';
import { describeFormat, detectFormat, sniffLength, type FileFormat } from '../domain/formats.ts';
import { tarballInspector, type TarballSummary } from '../archive/inspect.ts';
import type { OffThreadHash } from './off-thread-hash.ts';

export type FileRole = 'unified' | 'metadata' | 'rootfs';

export interface IngestSource {
  /** Shown in errors, and the basename becomes the image filename. */
  name: string;
  chunks: AsyncIterable<Uint8Array>;
  /** What an index promised for this file (copies from other servers): checked before commit. */
  expectedSha256?: string;
  expectedSize?: number;
}

export interface StagedFile {
  writer: BlobWriter;
  format: FileFormat;
  tarball: TarballSummary | undefined;
}

export interface IngestOptions {
  role: FileRole;
  blobs: BlobStore;
  /** Also fed every byte: the combined fingerprint of a split image. */
  combined?: OffThreadHash;
  onBytes?: (n: number) => void;
  signal?: AbortSignal;
}

export async function ingest(source: IngestSource, options: IngestOptions): Promise<StagedFile> {
  const iterator = source.chunks[Symbol.asyncIterator]();
  const head = await readHead(iterator);
  const format = detectFormat(head.bytes);
  if (!format) throw invalidImage(`${source.name} is not an image file (not a tarball, squashfs or qcow2)`);
  if (options.role !== 'rootfs' && format.kind !== 'tarball') {
    throw invalidImage(`${source.name} is a ${describeFormat(format)}, but a ${options.role} file must be a tarball`);
  }

  const writer = await options.blobs.createWriter();
  const inspector = format.kind === 'tarball' ? tarballInspector(format.compression, source.name) : undefined;
  // Keep the inspector's rejection observed until we await it, so an early failure is not "unhandled".
  inspector?.summary.catch(() => {});
  try {
    // The disk write of one chunk overlaps the hashing of the next: at most one write in flight.
    let writing: Promise<void> = Promise.resolve();
    const take = async (chunk: Uint8Array) => {
      options.signal?.throwIfAborted();
      if (source.expectedSize !== undefined && writer.size + chunk.byteLength > source.expectedSize) {
        throw new AppError(ErrorCodes.integrity, `${source.name} is larger than the ${source.expectedSize} bytes its index lists`);
      }
      await options.combined?.update(chunk);
      if (inspector && !inspector.sink.destroyed && !inspector.sink.write(chunk)) {
        await Promise.race([once(inspector.sink, 'drain'), inspector.summary]);
      }
      await writing;
      writing = writer.write(chunk);
      // Observed here, thrown at the next await: a failure after we stopped waiting is not "unhandled".
      writing.catch(() => {});
      options.onBytes?.(chunk.byteLength);
    };
    for (const chunk of head.chunks) await take(chunk);
    if (!head.done) {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) await take(next.value);
    }
    await writing;
    if (source.expectedSize !== undefined && writer.size !== source.expectedSize) {
      throw new AppError(ErrorCodes.integrity, `${source.name} is truncated: ${writer.size} of ${source.expectedSize} bytes`);
    }
    if (source.expectedSha256 !== undefined && writer.digest() !== source.expectedSha256) {
      throw new AppError(ErrorCodes.integrity, `Hash mismatch for ${source.name}: ${writer.digest()} != ${source.expectedSha256}`);
    }
    inspector?.sink.end();
    const tarball = await inspector?.summary;
    await checkComplete(format, writer, source.name);
    return { writer, format, tarball };
  } catch (err) {
    inspector?.sink.destroy();
    await writer.abort();
    throw err;
  }
}

async function readHead(iterator: AsyncIterator<Uint8Array>) {
  const chunks: Uint8Array[] = [];
  let length = 0;
  let done = false;
  while (length < sniffLength) {
    const next = await iterator.next();
    if (next.done) {
      done = true;
      break;
    }
    chunks.push(next.value);
    length += next.value.byteLength;
  }
  return { chunks, done, bytes: Buffer.concat(chunks) };
}

/** Formats that are not streams carry their own length or tables: check them against the file. */
async function checkComplete(format: FileFormat, writer: BlobWriter, name: string) {
  if (format.kind === 'squashfs') {
    const superblock = await readAt(writer.stagingPath, 0, 96);
    const bytesUsed = Number(superblock.readBigUInt64LE(40));
    if (bytesUsed > writer.size) throw invalidImage(`${name} is truncated: the squashfs needs ${bytesUsed} bytes but has ${writer.size}`);
  }
  if (format.kind === 'qcow2') await checkQcow2(writer.stagingPath, name);
}

async function readAt(path: string, position: number, length: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, position);
    return buffer;
  } finally {
    await handle.close();
  }
}

const run = promisify(execFile);

/** qemu-img reads only the qcow2 tables, so this is cheap even for a large disk. */
async function checkQcow2(path: string, name: string) {
  try {
    await run('qemu-img', ['check', '--force-share', '-q', '-f', 'qcow2', path]);
  } catch (err) {
    const e = err as { stderr?: string; code?: number | string; message: string };
    if ((e.code as unknown) === 3) return; // leaked clusters only: wasted space, not damage
    if (e.code === 'ENOENT') throw invalidImage(`cannot check ${name}: qemu-img is not installed (Debian package qemu-utils)`);
    throw invalidImage(`${name} is not a valid qcow2 disk: ${(e.stderr ?? e.message).trim().split('\n')[0]}`);
  }
}
