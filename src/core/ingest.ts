/**
 * One pass over an incoming file: every chunk is hashed (on other threads), staged in the blob store and, for
 * tarballs, fed to the inspector, at the same time. Nothing is committed here: the caller commits
 * the staged blobs only once the whole image checked out, and aborts them otherwise.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { AppError, ErrorCodes, invalidImage } from '../errors.ts';
import type { BlobWriter, BlobStore } from '../blob/store.ts';
import { describeFormat, detectFormat, sniffLength, type FileFormat } from '../domain/formats.ts';
import { checkQcow2Extent, checkQcow2Header, qcow2HeadLength, type Qcow2Header } from '../domain/qcow2.ts';
import { checkSquashfsSuperblock } from '../domain/squashfs.ts';
import { tarballInspector, type TarballSummary } from '../archive/inspect.ts';
import { framingCheck } from '../archive/framing.ts';
import { shareChunk, sharedChunkLimit, type OffThreadHash } from '../hashing/off-thread-hash.ts';

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

/**
 * Writes a file's pieces into a `BlobWriter` at hashing speed: each piece copied once into shared
 * memory (read in place by the hash threads, then written from), its disk write overlapping the
 * work on the next piece: at most one write in flight. `beforeWrite` sees the shared bytes first
 * (another hash of them). Pieces are at most `sharedChunkLimit` bytes: `pushAll` splits chunks.
 */
export class PipelinedWrites {
  private writing: Promise<void> = Promise.resolve();
  private readonly writer: BlobWriter;

  constructor(writer: BlobWriter) {
    this.writer = writer;
  }

  async push(piece: Uint8Array, beforeWrite?: (bytes: Uint8Array) => Promise<void>): Promise<void> {
    const shared = shareChunk(piece);
    try {
      await beforeWrite?.(shared.bytes);
      await this.writing;
    } catch (err) {
      shared.release();
      throw err;
    }
    this.writing = this.writer.write(shared.bytes).finally(() => shared.release());
    // Observed here, thrown at the next await: a failure after we stopped waiting is not "unhandled".
    this.writing.catch(() => {});
  }

  /** Every chunk of `chunks`, in pieces, then waits for the last write. */
  async pushAll(chunks: AsyncIterable<Uint8Array>): Promise<void> {
    for await (const chunk of chunks) {
      for (let at = 0; at < chunk.byteLength; at += sharedChunkLimit) await this.push(chunk.subarray(at, at + sharedChunkLimit));
    }
    await this.finish();
  }

  finish(): Promise<void> {
    return this.writing;
  }
}

export async function ingest(source: IngestSource, options: IngestOptions): Promise<StagedFile> {
  const iterator = source.chunks[Symbol.asyncIterator]();
  const head = await readHead(iterator);
  const format = detectFormat(head.bytes);
  if (!format) throw invalidImage(`${source.name} is not an image file (not a tarball, squashfs or qcow2)`);
  if (options.role !== 'rootfs' && format.kind !== 'tarball') {
    throw invalidImage(`${source.name} is a ${describeFormat(format)}, but a ${options.role} file must be a tarball`);
  }
  // Before any byte is staged, and long before qemu-img sees the file: no backing or data file.
  const qcow2 = format.kind === 'qcow2' ? checkQcow2Header(head.bytes, source.name) : undefined;

  const writer = await options.blobs.createWriter();
  // A split image's rootfs tarball is never read by wharf: where the compression has framing that
  // shows a cut or splice (xz, zstd), that is checked at hashing speed instead of decompressing
  // the whole root filesystem. Everything else is read through, as the metadata must be.
  const framing = format.kind === 'tarball' && options.role === 'rootfs' ? framingCheck(format.compression, source.name) : undefined;
  const inspector = format.kind === 'tarball' && !framing ? tarballInspector(format.compression, source.name) : undefined;
  // Keep the inspector's rejection observed until we await it, so an early failure is not "unhandled".
  inspector?.summary.catch(() => {});
  try {
    // The disk write of one chunk overlaps reading the next: at most one write in flight.
    const writes = new PipelinedWrites(writer);
    const takePiece = async (piece: Uint8Array) => {
      options.signal?.throwIfAborted();
      if (source.expectedSize !== undefined && writer.size + piece.byteLength > source.expectedSize) {
        throw new AppError(ErrorCodes.upstreamCorrupt, `${source.name} is larger than the ${source.expectedSize} bytes its index lists`);
      }
      // The checks keep references to what they are given: the source's own chunk, never reused.
      framing?.update(piece);
      if (inspector && !inspector.sink.destroyed && !inspector.sink.write(piece)) {
        // A decompressor's own error ('error' here) is reported as the inspector words it.
        await Promise.race([once(inspector.sink, 'drain').catch(() => inspector.summary), inspector.summary]);
      }
      // One copy into shared memory, read in place by both hashes (the file's and the combined)
      // on their threads, and written from; the block is reused once all of them are done.
      await writes.push(piece, options.combined && ((bytes) => options.combined!.update(bytes)));
      options.onBytes?.(piece.byteLength);
    };
    const take = async (chunk: Uint8Array) => {
      for (let at = 0; at < chunk.byteLength; at += sharedChunkLimit) await takePiece(chunk.subarray(at, at + sharedChunkLimit));
    };
    for (const chunk of head.chunks) await take(chunk);
    if (!head.done) {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) await take(next.value);
    }
    await writes.finish();
    if (source.expectedSize !== undefined && writer.size !== source.expectedSize) {
      throw new AppError(ErrorCodes.upstreamCorrupt, `${source.name} is truncated: ${writer.size} of ${source.expectedSize} bytes`);
    }
    if (source.expectedSha256 !== undefined) {
      const digest = await writer.digest();
      if (digest !== source.expectedSha256) throw new AppError(ErrorCodes.upstreamCorrupt, `Hash mismatch for ${source.name}: ${digest} != ${source.expectedSha256}`);
    }
    inspector?.sink.end();
    const tarball = await inspector?.summary;
    await framing?.finish((position, length) => writer.readAt(position, length));
    await checkComplete({ format, bytes: head.bytes, qcow2 }, writer, source.name, options.signal);
    return { writer, format, tarball };
  } catch (err) {
    inspector?.sink.destroy();
    await writer.abort();
    throw err;
  }
}

/** Enough of the start for format detection and a qcow2 header with its extensions. */
const headLength = Math.max(sniffLength, qcow2HeadLength);

async function readHead(iterator: AsyncIterator<Uint8Array>) {
  const chunks: Uint8Array[] = [];
  let length = 0;
  let done = false;
  while (length < headLength) {
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

interface Head {
  format: FileFormat;
  bytes: Buffer;
  qcow2: Qcow2Header | undefined;
}

/** Formats that are not streams carry their own length or tables: check them against the file. */
async function checkComplete(head: Head, writer: BlobWriter, name: string, signal: AbortSignal | undefined) {
  // Only the superblock: walking the tables ("unsquashfs -l") costs with the inode count, and was
  // measured at 6-18% of the sha256 pass over a 117 MiB xz squashfs of 9,800 inodes (0.01-0.03 s
  // against 0.16-0.19 s) and 30-50% over a 192 MiB one of 54,000 (0.09-0.14 s against
  // 0.27-0.31 s): far above the few percent a check on every import may add.
  if (head.format.kind === 'squashfs') checkSquashfsSuperblock(head.bytes, writer.size, name);
  if (head.qcow2) {
    checkQcow2Extent(head.qcow2, writer.size, name);
    await writer.withLocalFile((path) => checkQcow2(path, name, signal));
  }
}

/**
 * The tools get the staged file and nothing else: no inherited environment (no proxies, no
 * locale or plugin paths), no stdin, stdout thrown away, stderr kept short for the message.
 */
function runTool(command: string, args: string[], signal: AbortSignal | undefined): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(signal ? { signal } : {}),
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 64 * 1024) stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** A tool's first complaint, with the staging path (never meant for clients) replaced by the file's name. */
function toolMessage(stderr: string, path: string, name: string, alias?: string): string {
  let text = stderr.trim().split('\n')[0] ?? '';
  if (alias) text = text.replaceAll(alias, name);
  return text.replaceAll(path, name).replace(/^qemu-img: /, '');
}

/**
 * qemu-img reads only the qcow2 tables, so this is cheap even for a large disk. The header check
 * already refused backing and data files; the json: filename makes sure of the backing file
 * anyway (backing: null, and a plain-file protocol that parses no URL), should that check ever
 * miss one. An external data file cannot be switched off this way: qemu rejects a data-file
 * option on disks without one, so that rests on the header check alone. Exported for the test
 * that proves this invocation opens nothing but the file it is given.
 */
export async function checkQcow2(path: string, name: string, signal?: AbortSignal) {
  const target = `json:${JSON.stringify({ driver: 'qcow2', backing: null, file: { driver: 'file', filename: path } })}`;
  let result;
  try {
    result = await runTool('qemu-img', ['check', '--force-share', '-q', target], signal);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') throw invalidImage(`cannot check ${name}: qemu-img is not installed (Debian package qemu-utils)`);
    throw err;
  }
  if (result.code === 0 || result.code === 3) return; // 3: leaked clusters only, wasted space and not damage
  const why = toolMessage(result.stderr, path, name, target) || `qemu-img check exited with ${result.code}`;
  throw invalidImage(`${name} is not a valid qcow2 disk: ${why}`);
}
