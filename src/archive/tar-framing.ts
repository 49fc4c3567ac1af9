/**
 * The framing of an uncompressed tar archive, checked as it passes: every header's checksum, and
 * sizes that tile the file exactly up to the end-of-archive marker (two zero blocks, then nothing
 * but zeros: the padding of the last record). Used for a split image's rootfs.tar, which wharf
 * never reads: parsing every entry of a root filesystem (tens of thousands of names) cost more
 * than hashing it. Entry names and contents are not looked at; the clients unpack and judge them.
 *
 * The sizes are read as GNU tar and tar-stream read them: octal, or base-256 when the first byte
 * has its high bit set; a pax `size` record overrides the next entry's; a directory has no data.
 */
import { invalidImage } from '../errors.ts';
import type { FramingCheck } from './framing.ts';

const block = 512;
/** Pax and GNU long-name records are kept to read the size from; real ones are a few hundred bytes. */
const maxRecordBytes = 1 << 20;

export function tarCheck(what: string): FramingCheck {
  const fail = (why: string) => invalidImage(`${what} is not a complete tar archive: ${why}`);
  let seen = 0;
  let skip = 0;
  let header: Buffer = Buffer.alloc(0);
  /** Data of a pax header being collected, and how much of it is still to come. */
  let record: Buffer[] | undefined;
  let recordLeft = 0;
  let recordPadding = 0;
  let paxSize: number | undefined;
  let entries = 0;
  /** Where the first zero block began; from there on every byte must be zero. */
  let endAt: number | undefined;
  let failure: Error | undefined;

  const onHeader = (bytes: Buffer, at: number) => {
    if (isZero(bytes)) {
      endAt = at;
      return;
    }
    if (!checksumMatches(bytes)) throw fail(`the header at byte ${at} is damaged (checksum)`);
    const type = bytes[156]!;
    let size = paxSize ?? readSize(bytes, fail, at);
    paxSize = undefined;
    if (type === 0x35 /* '5' directory */) size = 0;
    entries++;
    const padded = Math.ceil(size / block) * block;
    // pax ('x'), pax global ('g'), GNU long name ('L') and long link ('K') are records about the
    // next entry: only pax's size changes where that entry's data ends.
    if (type === 0x78 /* 'x' */) {
      if (size > maxRecordBytes) throw fail(`a pax header at byte ${at} is larger than ${maxRecordBytes} bytes`);
      record = [];
      recordLeft = size;
      recordPadding = padded - size;
    } else {
      skip = padded;
    }
  };

  const onRecord = (data: Buffer) => {
    const size = paxRecord(data, 'size');
    if (size === undefined) return;
    if (!/^\d{1,16}$/.test(size)) throw fail(`a pax size record is not a number: ${JSON.stringify(size.slice(0, 40))}`);
    paxSize = Number(size);
  };

  return {
    update(chunk) {
      if (failure) return;
      let data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      try {
        while (data.length > 0) {
          const at = seen;
          if (endAt !== undefined) {
            if (!isZero(data)) throw fail(`bytes other than zeros follow the end-of-archive marker at byte ${endAt}`);
            seen += data.length;
            break;
          }
          if (skip > 0) {
            const n = Math.min(skip, data.length);
            skip -= n;
            seen += n;
            data = data.subarray(n);
            continue;
          }
          if (record) {
            const n = Math.min(recordLeft, data.length);
            record.push(Buffer.from(data.subarray(0, n)));
            recordLeft -= n;
            seen += n;
            data = data.subarray(n);
            if (recordLeft === 0) {
              onRecord(Buffer.concat(record));
              record = undefined;
              skip = recordPadding;
            }
            continue;
          }
          const take = Math.min(block - header.length, data.length);
          header = header.length === 0 && take === block ? data.subarray(0, take) : Buffer.concat([header, data.subarray(0, take)]);
          seen += take;
          data = data.subarray(take);
          if (header.length < block) break;
          const full = header;
          header = Buffer.alloc(0);
          onHeader(full, at - (full.length - take));
        }
      } catch (err) {
        failure = err as Error;
      }
    },
    async finish() {
      if (failure) throw failure;
      if (entries === 0) throw fail('it holds no entry');
      if (endAt === undefined) {
        throw fail(skip > 0 || record || header.length > 0 ? 'the last entry is cut short' : 'it does not end with the end-of-archive marker');
      }
      if (seen - endAt < 2 * block) throw fail('it does not end with the end-of-archive marker');
      if (seen % block !== 0) throw fail('its length is not a whole number of blocks');
    },
  };
}

const zeros = Buffer.alloc(64 * 1024);

function isZero(bytes: Buffer): boolean {
  // Compared in native code: padding after the marker can be a whole record (10 KiB) or more.
  for (let i = 0; i < bytes.length; i += zeros.length) {
    const part = bytes.subarray(i, i + zeros.length);
    if (!part.equals(zeros.subarray(0, part.length))) return false;
  }
  return true;
}

/** The stored checksum against the sum of the header with its checksum field read as spaces (unsigned, or signed as old tars wrote it). */
function checksumMatches(bytes: Buffer): boolean {
  const stored = parseOctal(bytes.subarray(148, 156));
  if (stored === undefined) return false;
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = 0; i < block; i++) {
    if (i >= 148 && i < 156) continue;
    unsigned += bytes[i]!;
    signed += (bytes[i]! << 24) >> 24;
  }
  return stored === unsigned || stored === signed;
}

function readSize(bytes: Buffer, fail: (why: string) => Error, at: number): number {
  const field = bytes.subarray(124, 136);
  if (field[0]! & 0x80) {
    // GNU base-256: big-endian, the first byte's high bit only marks it (negative sizes refused).
    if (field[0]! & 0x40) throw fail(`the header at byte ${at} has a negative size`);
    let size = field[0]! & 0x3f;
    for (let i = 1; i < field.length; i++) size = size * 256 + field[i]!;
    if (!Number.isSafeInteger(size)) throw fail(`the header at byte ${at} has an impossible size`);
    return size;
  }
  const size = parseOctal(field);
  if (size === undefined) throw fail(`the header at byte ${at} has no valid size`);
  return size;
}

/** An octal number padded with spaces or NULs, as tar writes them; undefined if it is anything else. */
function parseOctal(field: Buffer): number | undefined {
  const text = field.toString('latin1').replace(/^[ \0]+|[ \0]+$/g, '');
  if (text === '') return 0;
  return /^[0-7]+$/.test(text) ? parseInt(text, 8) : undefined;
}

/** The value of one key of a pax header ("LEN key=value\n" records); the last one wins, as in tar. */
function paxRecord(data: Buffer, key: string): string | undefined {
  let value: string | undefined;
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    const length = space > offset ? Number(data.toString('latin1', offset, space)) : NaN;
    if (!Number.isSafeInteger(length) || length <= space - offset || offset + length > data.length) break;
    const text = data.toString('utf8', space + 1, offset + length - 1);
    const equals = text.indexOf('=');
    if (equals > 0 && text.slice(0, equals) === key) value = text.slice(equals + 1);
    offset += length;
  }
  return value;
}
