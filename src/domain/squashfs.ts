/**
 * The squashfs 4.0 superblock (little-endian, 96 bytes), checked the way the kernel checks it on
 * mount, plus the table layout mksquashfs writes: a file that only has the magic number, or
 * whose tables point outside it, is refused at import instead of failing on a client at launch.
 */
import { invalidImage } from '../errors.ts';

export const squashfsSuperblockLength = 96;

export interface SquashfsSuperblock {
  inodeCount: number;
  blockSize: number;
  compression: string;
  bytesUsed: bigint;
}

const magic = 0x73717368;
/** Optional tables (fragments, export, xattrs) are "absent" with this start. */
const absent = 0xffffffffffffffffn;
const metadataBlockSize = 8192;
const compressors: Record<number, string> = { 1: 'gzip', 2: 'lzma', 3: 'lzo', 4: 'xz', 5: 'lz4', 6: 'zstd' };

/** `bytes` is at least the first 96 bytes of the file; fileSize is its full length. */
export function checkSquashfsSuperblock(bytes: Uint8Array, fileSize: number, what: string): SquashfsSuperblock {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (why: string) => invalidImage(`${what} is not a valid squashfs: ${why}`);
  if (b.length < squashfsSuperblockLength) throw fail('the file is too short for a superblock');
  if (b.readUInt32LE(0) !== magic) throw fail('it has no squashfs magic');
  const major = b.readUInt16LE(28);
  const minor = b.readUInt16LE(30);
  if (major !== 4 || minor !== 0) throw fail(`version ${major}.${minor} is not 4.0`);

  const blockSize = b.readUInt32LE(12);
  const blockLog = b.readUInt16LE(22);
  if (blockLog < 12 || blockLog > 20 || blockSize !== 2 ** blockLog) {
    throw fail(`block size ${blockSize} (log ${blockLog}) is not a power of two from 4 KiB to 1 MiB`);
  }
  const compression = compressors[b.readUInt16LE(20)];
  if (!compression) throw fail(`unknown compression id ${b.readUInt16LE(20)}`);
  const inodeCount = b.readUInt32LE(4);
  if (inodeCount === 0) throw fail('it holds no inodes');
  if (b.readUInt16LE(26) === 0) throw fail('it has no uid/gid table entries');

  const bytesUsed = b.readBigUInt64LE(40);
  if (bytesUsed > BigInt(fileSize)) {
    throw invalidImage(`${what} is truncated: the squashfs needs ${bytesUsed} bytes but has ${fileSize}`);
  }
  checkTables(b, bytesUsed, fail);
  return { inodeCount, blockSize, compression, bytesUsed };
}

/**
 * mksquashfs writes the inode table, directory table, fragment index, export index, id index and
 * xattr index in that order after the data; each must start past the superblock and the one
 * before it, and end before bytes_used.
 */
function checkTables(b: Buffer, bytesUsed: bigint, fail: (why: string) => Error) {
  const tables: Array<{ name: string; start: bigint; optional: boolean }> = [
    { name: 'inode table', start: b.readBigUInt64LE(64), optional: false },
    { name: 'directory table', start: b.readBigUInt64LE(72), optional: false },
    { name: 'fragment table', start: b.readBigUInt64LE(80), optional: true },
    { name: 'export table', start: b.readBigUInt64LE(88), optional: true },
    { name: 'id table', start: b.readBigUInt64LE(48), optional: false },
    { name: 'xattr table', start: b.readBigUInt64LE(56), optional: true },
  ];
  let previous = { name: 'superblock', start: BigInt(squashfsSuperblockLength - 1) };
  for (const table of tables) {
    if (table.optional && table.start === absent) continue;
    if (table.start <= previous.start) throw fail(`the ${table.name} does not start after the ${previous.name}`);
    // Every table is at least one 2-byte metadata header or one 8-byte index entry long.
    if (table.start + 2n > bytesUsed) throw fail(`the ${table.name} starts at ${table.start}, past the ${bytesUsed} bytes used`);
    previous = table;
  }
  const [inodeTable, directoryTable] = tables as [(typeof tables)[0], (typeof tables)[0]];
  const root = b.readBigUInt64LE(32);
  const rootBlock = inodeTable.start + (root >> 16n);
  if (root >> 48n !== 0n || rootBlock >= directoryTable.start || (root & 0xffffn) >= BigInt(metadataBlockSize)) {
    throw fail('the root inode lies outside the inode table');
  }
}
