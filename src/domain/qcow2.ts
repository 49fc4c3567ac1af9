/**
 * The qcow2 header (docs/interop/qcow2.txt in QEMU), read from an untrusted disk's first bytes
 * before any tool opens it. A qcow2 file can make whoever opens it open other things: a backing
 * file (any path, or a json: or nbd: URL that connects out) or an external data file. wharf
 * serves self-contained disks only, so both are refused here, as are features it does not know.
 */
import { invalidImage } from '../errors.ts';

/** Enough for the header and any honest set of header extensions. */
export const qcow2HeadLength = 64 * 1024;

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  /** Virtual disk size in bytes. */
  size: bigint;
  l1Size: number;
  l1TableOffset: bigint;
  refcountTableOffset: bigint;
  refcountTableClusters: number;
  snapshotCount: number;
  snapshotsOffset: bigint;
}

const magic = 0x514649fb;
const v2HeaderLength = 72;
const v3HeaderLength = 104;

const incompatible = {
  dirty: 1n << 0n,
  corrupt: 1n << 1n,
  externalDataFile: 1n << 2n,
  compressionType: 1n << 3n,
  extendedL2: 1n << 4n,
};
/** Bits qemu handles on its own: an unclean shutdown, zstd clusters, subclusters. */
const knownIncompatible = incompatible.dirty | incompatible.compressionType | incompatible.extendedL2;

const extensionEnd = 0;
const extensionDataFile = 0x44415441;

/**
 * Checks the header and its extensions. `bytes` is the start of the file: at least
 * qcow2HeadLength bytes, or the whole file if it is shorter.
 */
export function checkQcow2Header(bytes: Uint8Array, what: string): Qcow2Header {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (why: string) => invalidImage(`${what} is not a usable qcow2 disk: ${why}`);
  if (b.length < v2HeaderLength) throw fail('the file is too short for a qcow2 header');
  if (b.readUInt32BE(0) !== magic) throw fail('it has no qcow2 magic');
  const version = b.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw fail(`qcow2 version ${version} is not supported`);

  // Refused before anything else: no later field may make wharf (or qemu) look for another file.
  if (b.readBigUInt64BE(8) !== 0n || b.readUInt32BE(16) !== 0) {
    throw invalidImage(`${what} has a backing file`, 'Images must be self-contained: flatten the disk with "qemu-img convert -O qcow2".');
  }
  const clusterBits = b.readUInt32BE(20);
  if (clusterBits < 9 || clusterBits > 21) throw fail(`cluster_bits ${clusterBits} is outside 9..21`);
  if (b.readUInt32BE(32) !== 0) throw fail('encrypted disks are not supported');

  const headerLength = version === 2 ? v2HeaderLength : checkV3Features(b, clusterBits, fail, what);
  checkExtensions(b, headerLength, 1 << clusterBits, fail, what);
  return {
    version,
    clusterBits,
    size: b.readBigUInt64BE(24),
    l1Size: b.readUInt32BE(36),
    l1TableOffset: b.readBigUInt64BE(40),
    refcountTableOffset: b.readBigUInt64BE(48),
    refcountTableClusters: b.readUInt32BE(56),
    snapshotCount: b.readUInt32BE(60),
    snapshotsOffset: b.readBigUInt64BE(64),
  };
}

/** Returns the v3 header length, where the extensions start. */
function checkV3Features(b: Buffer, clusterBits: number, fail: (why: string) => Error, what: string): number {
  if (b.length < v3HeaderLength) throw fail('the file is too short for a version 3 header');
  const features = b.readBigUInt64BE(72);
  if (features & incompatible.externalDataFile) {
    throw invalidImage(`${what} keeps its data in an external file`, 'Images must be self-contained: convert the disk with "qemu-img convert -O qcow2".');
  }
  if (features & incompatible.corrupt) throw fail('qemu marked it corrupt');
  const unknown = features & ~knownIncompatible;
  if (unknown) throw fail(`unknown incompatible features 0x${unknown.toString(16)}`);
  const refcountOrder = b.readUInt32BE(96);
  if (refcountOrder > 6) throw fail(`refcount_order ${refcountOrder} is above 6`);
  const headerLength = b.readUInt32BE(100);
  if (headerLength < v3HeaderLength || headerLength % 8 !== 0 || headerLength > 1 << clusterBits) {
    throw fail(`header_length ${headerLength} is invalid`);
  }
  return headerLength;
}

/**
 * Walks the header extensions as qemu does (up to the end of the first cluster), but insists on
 * seeing all of them: an area longer than the bytes we were given could hide a data-file name.
 */
function checkExtensions(b: Buffer, start: number, clusterSize: number, fail: (why: string) => Error, what: string) {
  const end = clusterSize;
  let offset = start;
  while (offset < end) {
    if (offset + 8 > b.length) throw fail('its header extensions do not end within the first 64 KiB');
    const type = b.readUInt32BE(offset);
    const length = b.readUInt32BE(offset + 4);
    offset += 8;
    if (length > end - offset) throw fail('a header extension runs past the first cluster');
    if (type === extensionEnd) return;
    if (type === extensionDataFile) {
      throw invalidImage(`${what} names an external data file`, 'Images must be self-contained: convert the disk with "qemu-img convert -O qcow2".');
    }
    offset += Math.ceil(length / 8) * 8;
  }
}

/** The tables the header points at must lie inside the file (checked once its size is known). */
export function checkQcow2Extent(header: Qcow2Header, fileSize: number, what: string) {
  const size = BigInt(fileSize);
  const cluster = 1n << BigInt(header.clusterBits);
  const fail = (why: string) => invalidImage(`${what} is not a valid qcow2 disk: ${why}`);
  const inside = (offset: bigint, length: bigint) => offset % cluster === 0n && offset > 0n && offset + length <= size;
  // An empty disk (size 0) has no L1 table at all.
  if (header.l1Size > 0 && !inside(header.l1TableOffset, BigInt(header.l1Size) * 8n)) {
    throw fail(`its L1 table (at ${header.l1TableOffset}) lies outside the ${fileSize}-byte file`);
  }
  if (!inside(header.refcountTableOffset, BigInt(header.refcountTableClusters) * cluster) || header.refcountTableClusters === 0) {
    throw fail(`its refcount table (at ${header.refcountTableOffset}) lies outside the ${fileSize}-byte file`);
  }
  if (header.snapshotCount > 0 && !inside(header.snapshotsOffset, 1n)) {
    throw fail(`its snapshot table (at ${header.snapshotsOffset}) lies outside the ${fileSize}-byte file`);
  }
}
