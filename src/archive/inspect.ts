/**
 * Reads what an import needs from an image tarball while it streams past: metadata.yaml, whether
 * it holds a container rootfs/ or a VM rootfs.img, and whether it is complete. Nothing is
 * extracted to disk; only metadata.yaml (at most 1 MiB) and the first 64 KiB of rootfs.img (its
 * qcow2 header) are kept in memory.
 */
import { posix } from 'node:path';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { invalidImage } from '../errors.ts';
import { maxMetadataYamlBytes } from '../domain/metadata.ts';
import type { Compression } from '../domain/formats.ts';
import { checkQcow2Extent, checkQcow2Header, qcow2HeadLength } from '../domain/qcow2.ts';
import { decompressor } from './decompress.ts';

export interface TarballSummary {
  metadataYaml: string | undefined;
  hasRootfsDir: boolean;
  hasRootfsImg: boolean;
  entries: number;
}

/**
 * The path an extractor writes an entry to, relative to where it extracts: "./a//b/../c", "/c"
 * and "../c" all land on "c" (GNU tar drops leading "/" and everything up to a "..").
 */
export function normalizeEntryName(name: string): string {
  return posix.normalize(name).replace(/^(?:\/|\.\.(?:\/|$)|\.(?:\/|$))+/, '').replace(/\/+$/, '');
}

const regularTypes = new Set(['file', 'contiguous-file']);

/**
 * Returns a Writable to pipe the (compressed) tarball into, and a promise of its summary that
 * settles once the whole archive was read, or rejects if it is corrupt or cut short.
 */
export function tarballInspector(compression: Compression, what: string): { sink: Writable; summary: Promise<TarballSummary> } {
  const decompress = decompressor(compression);
  const extract = tar.extract();
  const summary: TarballSummary = { metadataYaml: undefined, hasRootfsDir: false, hasRootfsImg: false, entries: 0 };

  // The parser can finish before the last entry's reader has judged what it read.
  let lastRead: Promise<void> = Promise.resolve();

  extract.on('entry', (header, stream, next) => {
    summary.entries++;
    // The whole archive's failure is reported once, by the pipeline; the entry's copy is noise.
    stream.on('error', () => {});
    const name = normalizeEntryName(header.name);
    // A client unpacks into rootfs/: as a link it would send the whole tree somewhere else.
    if (name === 'rootfs' && header.type !== 'directory') return next(invalidImage(`${what}: rootfs is a ${header.type}, not a directory`));
    if (name === 'rootfs' || name.startsWith('rootfs/')) summary.hasRootfsDir = true;
    const reader = name === 'metadata.yaml' ? readMetadataYaml : name === 'rootfs.img' ? readRootfsImg : undefined;
    if (!reader) {
      stream.on('end', () => next());
      stream.resume();
      return;
    }
    // wharf would read the first copy while an extractor keeps the last: there must be one.
    const seen = name === 'metadata.yaml' ? summary.metadataYaml !== undefined : summary.hasRootfsImg;
    if (seen) return next(invalidImage(`${what} holds more than one ${name}`));
    if (!regularTypes.has(header.type ?? 'file')) return next(notRegular(what, name, header.type ?? 'file'));
    lastRead = reader(stream, header.size ?? 0, what, summary);
    lastRead.then(() => next(), next);
  });

  const done = pipeline(decompress, withoutEndMarker(what), extract)
    .then(async () => {
      await lastRead;
      if (summary.entries === 0) throw invalidImage(`${what} is empty or not a tar archive`);
      return summary;
    })
    .catch((err: Error) => {
      if ((err as { code?: string }).code === 'invalid_image') throw err;
      throw invalidImage(`${what} is corrupt or truncated: ${err.message}`);
    });
  return { sink: decompress, summary: done };
}

const blockSize = 512;
const endMarkerSize = 2 * blockSize;

/**
 * Passes the archive on without its last two blocks, which must be zeros: the end-of-archive
 * marker every tar writer puts there. The parser then finds any entry whose declared size reaches
 * into the marker cut short, and an archive cut at an entry boundary has no marker at all (an
 * extractor accepts both, with what the file cut off).
 */
function withoutEndMarker(what: string): Transform {
  let held: Buffer = Buffer.alloc(0);
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (chunk.length >= endMarkerSize) {
        if (held.length > 0) this.push(held);
        this.push(chunk.subarray(0, chunk.length - endMarkerSize));
        held = chunk.subarray(chunk.length - endMarkerSize);
      } else {
        const joined = Buffer.concat([held, chunk]);
        const pass = Math.max(0, joined.length - endMarkerSize);
        if (pass > 0) this.push(joined.subarray(0, pass));
        held = joined.subarray(pass);
      }
      done();
    },
    flush(done) {
      if (held.length === endMarkerSize && held.every((b) => b === 0)) return done();
      done(invalidImage(`${what} is corrupt or truncated: it does not end with the end-of-archive marker`));
    },
  });
}

/** An extractor would make a link or a device where the file should be: never follow it. */
function notRegular(what: string, name: string, type: string) {
  const message = `${name} is a ${type}, not a regular file`;
  return invalidImage(name === 'metadata.yaml' ? `${what} has no metadata.yaml file: its ${message}` : `${what}: ${message}`);
}

/** Reads the whole entry, keeping only its first `keep` bytes. */
async function readPrefix(stream: AsyncIterable<unknown>, keep: number): Promise<{ prefix: Buffer; size: number }> {
  const chunks: Buffer[] = [];
  let kept = 0;
  let size = 0;
  for await (const data of stream) {
    const chunk = data as Buffer;
    size += chunk.length;
    if (kept < keep) {
      const part = chunk.subarray(0, keep - kept);
      chunks.push(part);
      kept += part.length;
    }
  }
  return { prefix: Buffer.concat(chunks), size };
}

async function readMetadataYaml(stream: AsyncIterable<unknown>, _size: number, what: string, summary: TarballSummary) {
  const { prefix, size } = await readPrefix(stream, maxMetadataYamlBytes + 1);
  if (size > maxMetadataYamlBytes) throw invalidImage(`${what}: metadata.yaml is larger than ${maxMetadataYamlBytes} bytes`);
  try {
    // Decoding leniently would store U+FFFD where the image has other bytes.
    summary.metadataYaml = new TextDecoder('utf-8', { fatal: true }).decode(prefix);
  } catch {
    throw invalidImage(`${what}: metadata.yaml is not valid UTF-8`);
  }
}

/** LXD converts rootfs.img with "qemu-img convert -f qcow2": it must be a self-contained qcow2. */
async function readRootfsImg(stream: AsyncIterable<unknown>, size: number, what: string, summary: TarballSummary) {
  summary.hasRootfsImg = true;
  const { prefix } = await readPrefix(stream, qcow2HeadLength);
  const disk = `${what}: rootfs.img`;
  const header = checkQcow2Header(prefix, disk);
  checkQcow2Extent(header, size, disk);
}

/** Convenience for tests and small files: inspect a whole readable. */
export async function inspectTarball(source: NodeJS.ReadableStream, compression: Compression, what: string): Promise<TarballSummary> {
  const { sink, summary } = tarballInspector(compression, what);
  const fed = pipeline(source, sink as Writable);
  // A damaged stream fails both; the summary's error is the one that says what is wrong.
  fed.catch(() => {});
  const result = await summary;
  await fed;
  return result;
}
