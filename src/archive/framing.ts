/**
 * Checks the framing of a compressed stream as it passes, without decompressing it: enough to
 * refuse a truncated, cut-and-spliced or padded file at hashing speed. Used for a split image's
 * rootfs tarball, which wharf never needs to read (the metadata tarball is read in full).
 *
 * - xz: the stream header, then at the end every stream's footer, index (with its CRC32) and
 *   block headers (with theirs), which must tile the file exactly (xz file format 1.1.0).
 * - zstd: every frame header and block header in turn, which must end exactly at the end of the
 *   file (RFC 8878); skippable frames are allowed.
 * - no compression: the tar headers themselves (tar-framing.ts).
 *
 * What it cannot see is damage inside compressed blocks: only decompression finds that, and the
 * clients decompress (and so check) every byte when they unpack.
 */
import { crc32 } from 'node:zlib';
import { invalidImage } from '../errors.ts';
import type { Compression } from '../domain/formats.ts';
import { tarCheck } from './tar-framing.ts';

export interface FramingCheck {
  update(chunk: Uint8Array): void;
  /**
   * Called once every byte was seen. `readAt` reads back bytes of the file already seen (for
   * indexes that lie before the kept tail); it rejects if the check fails.
   */
  finish(readAt: (position: number, length: number) => Promise<Uint8Array>): Promise<void>;
}

/** A framing check for this compression, or undefined where only decompression can tell. */
export function framingCheck(compression: Compression, what: string): FramingCheck | undefined {
  if (compression === 'xz') return xzCheck(what);
  if (compression === 'zstd') return zstdCheck(what);
  if (compression === 'none') return tarCheck(what);
  return undefined;
}

// ---- xz ---------------------------------------------------------------------------------

const xzMagic = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
/** Bytes kept from the end of the file: every single-stream xz index of a real image fits. */
const xzTailBytes = 1 << 20;

function xzCheck(what: string): FramingCheck {
  const fail = (why: string) => invalidImage(`${what} is not a complete xz file: ${why}`);
  let size = 0;
  let head = Buffer.alloc(0);
  // The last chunks, by reference (a chunk is never reused once written): at least xzTailBytes.
  let recent: Uint8Array[] = [];
  let recentBytes = 0;
  return {
    update(chunk) {
      size += chunk.byteLength;
      if (head.length < 12) head = Buffer.concat([head, chunk.subarray(0, 12 - head.length)]);
      recent.push(chunk);
      recentBytes += chunk.byteLength;
      while (recentBytes - recent[0]!.byteLength >= xzTailBytes) recentBytes -= recent.shift()!.byteLength;
    },
    async finish(readAt) {
      const tail = Buffer.concat(recent);
      recent = [];
      const read = async (position: number, length: number): Promise<Buffer> => {
        if (position < 0 || position + length > size) throw fail('a size field points outside the file');
        const tailStart = size - tail.length;
        if (position >= tailStart) return tail.subarray(position - tailStart, position - tailStart + length);
        return Buffer.from(await readAt(position, length));
      };
      let end = size;
      let streams = 0;
      while (end > 0) {
        // Stream padding: whole groups of four zero bytes after a stream.
        while (end >= 4 && (await read(end - 4, 4)).readUInt32LE(0) === 0) end -= 4;
        if (end === 0) break;
        const start = await checkXzStream(read, end, fail);
        streams++;
        end = start;
      }
      if (streams === 0) throw fail('no stream');
      const header = head.subarray(0, 12);
      if (!xzMagic.every((b, i) => header[i] === b)) throw fail('no stream header at the start');
    },
  };
}

/** Checks the stream that ends at `end` (its footer's last byte); returns where it starts. */
async function checkXzStream(read: (position: number, length: number) => Promise<Buffer>, end: number, fail: (why: string) => Error): Promise<number> {
  if (end < 24 || end % 4 !== 0) throw fail('the file is cut short');
  const footer = await read(end - 12, 12);
  if (footer[10] !== 0x59 || footer[11] !== 0x5a) throw fail('the stream footer is missing (cut short?)');
  if (crc32(footer.subarray(4, 10)) !== footer.readUInt32LE(0)) throw fail('the stream footer is damaged');
  const flags = footer.subarray(8, 10);
  const checkSize = xzCheckSize(flags[1]! & 0x0f);
  const indexSize = (footer.readUInt32LE(4) + 1) * 4;
  const indexStart = end - 12 - indexSize;
  const index = await read(indexStart, indexSize);
  if (index[0] !== 0x00) throw fail('the index is missing');
  if (crc32(index.subarray(0, indexSize - 4)) !== index.readUInt32LE(indexSize - 4)) throw fail('the index is damaged');
  let at = 1;
  const varint = () => {
    let value = 0;
    for (let shift = 0; shift < 63; shift += 7) {
      if (at >= indexSize - 4) throw fail('the index is damaged');
      const byte = index[at++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value;
    }
    throw fail('the index is damaged');
  };
  const records = varint();
  const blocks: number[] = [];
  for (let i = 0; i < records; i++) {
    const unpadded = varint();
    varint(); // uncompressed size: only decompression could check it
    blocks.push(unpadded);
  }
  const blocksSize = blocks.reduce((sum, unpadded) => sum + Math.ceil(unpadded / 4) * 4, 0);
  const start = indexStart - blocksSize - 12;
  if (start < 0) throw fail('the index lists more blocks than the file holds');
  const header = await read(start, 12);
  if (!xzMagic.every((b, i) => header[i] === b)) throw fail('a stream does not start where its index says (spliced or cut?)');
  if (crc32(header.subarray(6, 8)) !== header.readUInt32LE(8)) throw fail('a stream header is damaged');
  if (header[6] !== flags[0] || header[7] !== flags[1]) throw fail('a stream header and footer disagree');
  // Each block starts with a header whose first byte gives its size, and a CRC32 of its own.
  let position = start + 12;
  for (const unpadded of blocks) {
    const sizeByte = (await read(position, 1))[0]!;
    const headerSize = (sizeByte + 1) * 4;
    if (sizeByte === 0 || headerSize + checkSize > unpadded) throw fail('a block header is damaged');
    const blockHeader = await read(position, headerSize);
    if (crc32(blockHeader.subarray(0, headerSize - 4)) !== blockHeader.readUInt32LE(headerSize - 4)) throw fail('a block header is damaged');
    position += Math.ceil(unpadded / 4) * 4;
  }
  return start;
}

/** Size of the integrity check at the end of each block, by check id (xz spec 2.1.1.2). */
function xzCheckSize(id: number): number {
  if (id === 0) return 0;
  return 4 * 2 ** Math.floor((id - 1) / 3);
}

// ---- zstd -------------------------------------------------------------------------------

const zstdMagic = 0xfd2fb528;
const maxBlockSize = 128 * 1024;

/**
 * A small state machine over the byte stream: it parses each header once enough bytes for it
 * have arrived, and skips block contents by counting, so no data is copied.
 */
function zstdCheck(what: string): FramingCheck {
  const fail = (why: string) => invalidImage(`${what} is not a complete zstd file: ${why}`);
  type Want = 'magic' | 'frameHeader' | 'blockHeader' | 'checksum' | 'skipSize';
  let want: Want = 'magic';
  let need = 4;
  let pending: Buffer = Buffer.alloc(0);
  let skip = 0;
  let frames = 0;
  let checksum = false;
  let failure: Error | undefined;

  const onHeader = (bytes: Buffer): void => {
    switch (want) {
      case 'magic': {
        const magic = bytes.readUInt32LE(0);
        if (magic === zstdMagic) {
          frames++;
          want = 'frameHeader';
          need = 1;
        } else if ((magic & 0xfffffff0) === 0x184d2a50) {
          want = 'skipSize';
          need = 4;
        } else {
          throw fail(frames === 0 ? 'no frame at the start' : 'garbage after a frame');
        }
        return;
      }
      case 'frameHeader': {
        if (bytes.length === 1) {
          const descriptor = bytes[0]!;
          if (descriptor & 0x08) throw fail('a frame header is damaged');
          const singleSegment = (descriptor >> 5) & 1;
          const fcsFlag = descriptor >> 6;
          const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
          const dictBytes = [0, 1, 2, 4][descriptor & 3]!;
          checksum = (descriptor & 0x04) !== 0;
          const rest = (singleSegment ? 0 : 1) + dictBytes + fcsBytes;
          if (rest > 0) {
            // Re-enter with the descriptor and the rest of the header together.
            need = 1 + rest;
            pending = Buffer.from(bytes);
            return;
          }
        }
        want = 'blockHeader';
        need = 3;
        return;
      }
      case 'blockHeader': {
        const header = bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16);
        const last = header & 1;
        const type = (header >> 1) & 3;
        const blockSize = header >>> 3;
        if (type === 3) throw fail('a block header is damaged');
        if (blockSize > maxBlockSize) throw fail('a block is larger than zstd allows');
        skip = type === 1 ? 1 : blockSize;
        if (last) {
          want = checksum ? 'checksum' : 'magic';
          need = 4;
        } else {
          need = 3;
        }
        return;
      }
      case 'checksum':
        want = 'magic';
        need = 4;
        return;
      case 'skipSize':
        skip = bytes.readUInt32LE(0);
        want = 'magic';
        need = 4;
        return;
    }
  };

  return {
    update(chunk) {
      if (failure) return;
      let data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      try {
        while (data.length > 0) {
          if (skip > 0) {
            const n = Math.min(skip, data.length);
            skip -= n;
            data = data.subarray(n);
            continue;
          }
          const take = Math.min(need - pending.length, data.length);
          pending = pending.length === 0 && take === need ? data.subarray(0, take) : Buffer.concat([pending, data.subarray(0, take)]);
          data = data.subarray(take);
          if (pending.length < need) break;
          const header = pending;
          pending = Buffer.alloc(0);
          onHeader(header);
        }
      } catch (err) {
        failure = err as Error;
      }
    },
    async finish() {
      if (failure) throw failure;
      if (frames === 0) throw fail('no frame');
      if (skip > 0 || pending.length > 0 || want !== 'magic') throw fail('the file is cut short');
    },
  };
}
