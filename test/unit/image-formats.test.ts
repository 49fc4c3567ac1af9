/**
 * The checks that stand between an untrusted image file and the tools that open it: the qcow2
 * header, the squashfs superblock, tarball entry names, metadata.yaml dates. Every forgery is
 * built here from bytes, so each test names exactly the field it breaks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { checkQcow2Extent, checkQcow2Header } from '../../src/domain/qcow2.ts';
import { checkSquashfsSuperblock } from '../../src/domain/squashfs.ts';
import { parseMetadataYaml } from '../../src/domain/metadata.ts';
import { inspectTarball, normalizeEntryName } from '../../src/archive/inspect.ts';

// ---- qcow2 --------------------------------------------------------------------------------

interface Qcow2Fields {
  version?: number;
  backingOffset?: bigint;
  backingSize?: number;
  clusterBits?: number;
  crypt?: number;
  l1Size?: number;
  l1Offset?: bigint;
  refcountOffset?: bigint;
  refcountClusters?: number;
  incompatible?: bigint;
  headerLength?: number;
  /** Header extensions as [type, data]; an end marker follows unless `unterminated`. */
  extensions?: Array<[number, Buffer]>;
  unterminated?: boolean;
  /** Total bytes handed to the check (the "head" of the file). */
  length?: number;
}

/** A qcow2 header as qemu-img writes one for a 1 MiB disk with 64 KiB clusters. */
function qcow2(f: Qcow2Fields = {}): Buffer {
  const version = f.version ?? 3;
  const b = Buffer.alloc(Math.max(f.length ?? 0, 65536));
  b.writeUInt32BE(0x514649fb, 0);
  b.writeUInt32BE(version, 4);
  b.writeBigUInt64BE(f.backingOffset ?? 0n, 8);
  b.writeUInt32BE(f.backingSize ?? 0, 16);
  b.writeUInt32BE(f.clusterBits ?? 16, 20);
  b.writeBigUInt64BE(1048576n, 24);
  b.writeUInt32BE(f.crypt ?? 0, 32);
  b.writeUInt32BE(f.l1Size ?? 1, 36);
  b.writeBigUInt64BE(f.l1Offset ?? 0x30000n, 40);
  b.writeBigUInt64BE(f.refcountOffset ?? 0x10000n, 48);
  b.writeUInt32BE(f.refcountClusters ?? 1, 56);
  let offset = 72;
  if (version === 3) {
    b.writeBigUInt64BE(f.incompatible ?? 0n, 72);
    b.writeUInt32BE(4, 96);
    b.writeUInt32BE(f.headerLength ?? 112, 100);
    offset = f.headerLength ?? 112;
  }
  for (const [type, data] of f.extensions ?? []) {
    b.writeUInt32BE(type, offset);
    b.writeUInt32BE(data.length, offset + 4);
    data.copy(b, offset + 8);
    offset += 8 + Math.ceil(data.length / 8) * 8;
  }
  if (f.unterminated) b.fill(0xee, offset);
  return b.subarray(0, f.length ?? 65536);
}

const backingFormat: [number, Buffer] = [0xe2792aca, Buffer.from('raw')];
const dataFileName: [number, Buffer] = [0x44415441, Buffer.from('/etc/hostname')];

test('qcow2: self-contained disks of either version pass', () => {
  const v3 = checkQcow2Header(qcow2({ extensions: [[0x6803f857, Buffer.alloc(48)]] }), 'disk.qcow2');
  assert.equal(v3.version, 3);
  assert.equal(v3.clusterBits, 16);
  assert.equal(v3.size, 1048576n);
  assert.equal(checkQcow2Header(qcow2({ version: 2 }), 'disk.qcow2').version, 2);
  // Dirty (bit 0), zstd compression (bit 3) and extended L2 (bit 4) are qemu's own business.
  assert.doesNotThrow(() => checkQcow2Header(qcow2({ incompatible: 0b11001n }), 'disk.qcow2'));
  assert.doesNotThrow(() => checkQcow2Header(qcow2({ clusterBits: 9 }), 'disk.qcow2'));
  assert.doesNotThrow(() => checkQcow2Header(qcow2({ clusterBits: 21 }), 'disk.qcow2'));
  // A file shorter than the head: whatever it has is all there is.
  assert.doesNotThrow(() => checkQcow2Header(qcow2({ length: 200 }), 'disk.qcow2'));
});

test('qcow2: a backing file is refused, however it is spelled', () => {
  const json = Buffer.from('json:{"driver":"nbd","server":{"type":"inet","host":"127.0.0.1","port":"1"}}');
  assert.throws(() => checkQcow2Header(qcow2({ backingOffset: 0x200n, backingSize: json.length }), 'a.qcow2'), /a\.qcow2 has a backing file/);
  assert.throws(() => checkQcow2Header(qcow2({ backingOffset: 0x200n, backingSize: 0 }), 'a.qcow2'), /has a backing file/);
  assert.throws(() => checkQcow2Header(qcow2({ backingSize: 13 }), 'a.qcow2'), /has a backing file/);
  assert.throws(() => checkQcow2Header(qcow2({ version: 2, backingOffset: 0x200n, backingSize: 13, extensions: [backingFormat] }), 'a.qcow2'), /has a backing file/);
});

test('qcow2: an external data file is refused, by feature bit or by header extension', () => {
  assert.throws(() => checkQcow2Header(qcow2({ incompatible: 1n << 2n, extensions: [dataFileName] }), 'a.qcow2'), /keeps its data in an external file/);
  assert.throws(() => checkQcow2Header(qcow2({ incompatible: 1n << 2n }), 'a.qcow2'), /external file/);
  assert.throws(() => checkQcow2Header(qcow2({ extensions: [backingFormat, dataFileName] }), 'a.qcow2'), /names an external data file/);
  assert.throws(() => checkQcow2Header(qcow2({ version: 2, extensions: [dataFileName] }), 'a.qcow2'), /names an external data file/);
});

test('qcow2: unknown or alarming features and malformed headers are refused', () => {
  const bad = (f: Qcow2Fields, message: RegExp) => assert.throws(() => checkQcow2Header(qcow2(f), 'a.qcow2'), message);
  bad({ incompatible: 1n << 1n }, /marked it corrupt/);
  bad({ incompatible: 1n << 5n }, /unknown incompatible features 0x20/);
  bad({ incompatible: 1n << 63n }, /unknown incompatible features/);
  bad({ version: 1 }, /version 1 is not supported/);
  bad({ version: 4 }, /version 4 is not supported/);
  bad({ clusterBits: 8 }, /cluster_bits 8/);
  bad({ clusterBits: 22 }, /cluster_bits 22/);
  bad({ crypt: 1 }, /encrypted/);
  bad({ headerLength: 100 }, /header_length 100/);
  bad({ headerLength: 108 }, /header_length 108/);
  bad({ clusterBits: 9, headerLength: 1024 }, /header_length 1024/);
  bad({ length: 60 }, /too short/);
  bad({ length: 90 }, /too short for a version 3 header/);
  // The extension area must be walked to its end: an unterminated one could hide a data file.
  bad({ unterminated: true, extensions: [backingFormat] }, /runs past the first cluster/);
  bad({ extensions: [[0x12345678, Buffer.alloc(70000)]] }, /runs past the first cluster/);
  bad({ extensions: [backingFormat], length: 128 }, /do not end within the first 64 KiB/);
  const notQcow2 = Buffer.from('this is a text file, not a disk\n'.repeat(30));
  assert.throws(() => checkQcow2Header(notQcow2, 'rootfs.img'), /rootfs\.img is not a usable qcow2 disk: it has no qcow2 magic/);
});

test('qcow2: the L1 and refcount tables must lie inside the file', () => {
  const header = checkQcow2Header(qcow2(), 'a.qcow2');
  assert.doesNotThrow(() => checkQcow2Extent(header, 0x30008, 'a.qcow2'));
  assert.throws(() => checkQcow2Extent(header, 0x30004, 'a.qcow2'), /L1 table .* outside the 196612-byte file/);
  const far = checkQcow2Header(qcow2({ l1Offset: 1n << 40n }), 'a.qcow2');
  assert.throws(() => checkQcow2Extent(far, 1 << 20, 'a.qcow2'), /L1 table/);
  const unaligned = checkQcow2Header(qcow2({ l1Offset: 0x30001n }), 'a.qcow2');
  assert.throws(() => checkQcow2Extent(unaligned, 1 << 20, 'a.qcow2'), /L1 table/);
  const refcount = checkQcow2Header(qcow2({ refcountOffset: 0x100000n }), 'a.qcow2');
  assert.throws(() => checkQcow2Extent(refcount, 0x40000, 'a.qcow2'), /refcount table .* outside/);
  const noRefcount = checkQcow2Header(qcow2({ refcountClusters: 0 }), 'a.qcow2');
  assert.throws(() => checkQcow2Extent(noRefcount, 0x40000, 'a.qcow2'), /refcount table/);
  // A zero-sized disk has no L1 table at all (qemu-img create ... 0 writes offset 0).
  const empty = checkQcow2Header(qcow2({ l1Size: 0, l1Offset: 0n }), 'a.qcow2');
  assert.doesNotThrow(() => checkQcow2Extent(empty, 0x30000, 'a.qcow2'));
});

// ---- squashfs -----------------------------------------------------------------------------

interface SquashfsFields {
  magic?: number;
  inodes?: number;
  blockSize?: number;
  blockLog?: number;
  compression?: number;
  ids?: number;
  major?: number;
  minor?: number;
  root?: bigint;
  bytesUsed?: bigint;
  inodeTable?: bigint;
  directoryTable?: bigint;
  fragmentTable?: bigint;
  exportTable?: bigint;
  idTable?: bigint;
  xattrTable?: bigint;
}

const none = 0xffffffffffffffffn;

/** The superblock mksquashfs 4.5 wrote for a four-inode tree (tables copied from a real one). */
function squashfs(f: SquashfsFields = {}): Buffer {
  const b = Buffer.alloc(96);
  b.writeUInt32LE(f.magic ?? 0x73717368, 0);
  b.writeUInt32LE(f.inodes ?? 4, 4);
  b.writeUInt32LE(f.blockSize ?? 131072, 12);
  b.writeUInt32LE(1, 16);
  b.writeUInt16LE(f.compression ?? 1, 20);
  b.writeUInt16LE(f.blockLog ?? 17, 22);
  b.writeUInt16LE(0xc0, 24);
  b.writeUInt16LE(f.ids ?? 1, 26);
  b.writeUInt16LE(f.major ?? 4, 28);
  b.writeUInt16LE(f.minor ?? 0, 30);
  b.writeBigUInt64LE(f.root ?? 96n, 32);
  b.writeBigUInt64LE(f.bytesUsed ?? 316n, 40);
  b.writeBigUInt64LE(f.idTable ?? 254n, 48);
  b.writeBigUInt64LE(f.xattrTable ?? 292n, 56);
  b.writeBigUInt64LE(f.inodeTable ?? 99n, 64);
  b.writeBigUInt64LE(f.directoryTable ?? 160n, 72);
  b.writeBigUInt64LE(f.fragmentTable ?? 213n, 80);
  b.writeBigUInt64LE(f.exportTable ?? 240n, 88);
  return b;
}

test('squashfs: superblocks mksquashfs writes pass', () => {
  assert.deepEqual(checkSquashfsSuperblock(squashfs(), 4096, 'root.squashfs'), { inodeCount: 4, blockSize: 131072, compression: 'gzip', bytesUsed: 316n });
  // -no-xattrs -no-exports: those tables are absent.
  assert.doesNotThrow(() => checkSquashfsSuperblock(squashfs({ xattrTable: none, exportTable: none }), 316, 'root.squashfs'));
  assert.doesNotThrow(() => checkSquashfsSuperblock(squashfs({ fragmentTable: none }), 316, 'root.squashfs'));
  assert.equal(checkSquashfsSuperblock(squashfs({ compression: 6, blockSize: 4096, blockLog: 12 }), 316, 'r').compression, 'zstd');
  assert.doesNotThrow(() => checkSquashfsSuperblock(squashfs({ blockSize: 1 << 20, blockLog: 20 }), 316, 'r'));
});

test('squashfs: a hollow file with only the magic number is refused', () => {
  const hollow = Buffer.alloc(4096);
  hollow.writeUInt32LE(0x73717368, 0);
  assert.throws(() => checkSquashfsSuperblock(hollow, hollow.length, 'hollow.squashfs'), /hollow\.squashfs is not a valid squashfs/);
});

test('squashfs: each superblock field is checked', () => {
  const bad = (f: SquashfsFields, message: RegExp, size = 4096) => assert.throws(() => checkSquashfsSuperblock(squashfs(f), size, 'r.squashfs'), message);
  bad({ magic: 0x73717369 }, /no squashfs magic/);
  bad({ major: 3, minor: 1 }, /version 3\.1 is not 4\.0/);
  bad({ minor: 1 }, /version 4\.1/);
  bad({ blockSize: 131073 }, /block size 131073/);
  bad({ blockSize: 65536 }, /block size 65536 \(log 17\)/);
  bad({ blockSize: 2048, blockLog: 11 }, /block size 2048/);
  bad({ blockSize: 1 << 21, blockLog: 21 }, /block size/);
  bad({ compression: 0 }, /unknown compression id 0/);
  bad({ compression: 7 }, /unknown compression id 7/);
  bad({ inodes: 0 }, /no inodes/);
  bad({ ids: 0 }, /no uid\/gid/);
  bad({}, /truncated: the squashfs needs 316 bytes but has 300/, 300);
  bad({ inodeTable: 50n }, /inode table does not start after the superblock/);
  bad({ directoryTable: 99n }, /directory table does not start after the inode table/);
  bad({ idTable: 200n }, /id table does not start after the export table/);
  bad({ fragmentTable: 0n }, /fragment table does not start/);
  bad({ xattrTable: 400n }, /xattr table starts at 400, past the 316 bytes used/);
  bad({ idTable: none, xattrTable: none }, /id table/);
  bad({ inodeTable: none }, /inode table/);
  bad({ root: 200n << 16n }, /root inode lies outside the inode table/);
  bad({ root: 8192n }, /root inode/);
  bad({ root: 1n << 48n }, /root inode/);
  assert.throws(() => checkSquashfsSuperblock(squashfs().subarray(0, 64), 4096, 'r'), /too short/);
});

// ---- metadata.yaml dates ------------------------------------------------------------------

test('metadata.yaml: dates must fit a date (year 9999 at most), positive integers only', () => {
  const yaml = (date: string, key = 'creation_date') =>
    key === 'creation_date' ? `architecture: x86_64\ncreation_date: ${date}\n` : `architecture: x86_64\ncreation_date: 1700000000\n${key}: ${date}\n`;
  const parse = parseMetadataYaml;
  assert.equal(parse(yaml('253402300799')).creationDate, 253402300799);
  assert.equal(parse(yaml('253402300799', 'expiry_date')).expiryDate, 253402300799);
  for (const key of ['creation_date', 'expiry_date']) {
    assert.throws(() => parse(yaml('99999999999999', key)), new RegExp(`${key} 99999999999999 is after the year 9999`));
    assert.throws(() => parse(yaml('253402300800', key)), /after the year 9999/);
    assert.throws(() => parse(yaml('"99999999999999999999"', key)), /after the year 9999/);
    assert.throws(() => parse(yaml('1e300', key)), /after the year 9999/);
    assert.throws(() => parse(yaml('-1', key)), new RegExp(`${key} must be a Unix timestamp in seconds, got -1`));
    assert.throws(() => parse(yaml('1.5', key)), /must be a Unix timestamp/);
    assert.throws(() => parse(yaml('.inf', key)), /must be a Unix timestamp/);
  }
  // Whatever parses, a Date can hold.
  assert.equal(new Date(parse(yaml('253402300799')).creationDate * 1000).toISOString(), '9999-12-31T23:59:59.000Z');
});

// ---- tarball entries ----------------------------------------------------------------------

test('entry names normalise as an extractor resolves them', () => {
  const cases: Record<string, string> = {
    'metadata.yaml': 'metadata.yaml',
    './metadata.yaml': 'metadata.yaml',
    '/metadata.yaml': 'metadata.yaml',
    '//metadata.yaml': 'metadata.yaml',
    './/./metadata.yaml': 'metadata.yaml',
    'templates/../metadata.yaml': 'metadata.yaml',
    '../metadata.yaml': 'metadata.yaml',
    '../../x/../metadata.yaml': 'metadata.yaml',
    'metadata.yaml/': 'metadata.yaml',
    './rootfs/': 'rootfs',
    './rootfs//bin/sh': 'rootfs/bin/sh',
    'x/../rootfs/etc': 'rootfs/etc',
    './': '',
    '..hidden/x': '..hidden/x',
    'templates/hostname.tpl': 'templates/hostname.tpl',
  };
  for (const [name, expected] of Object.entries(cases)) assert.equal(normalizeEntryName(name), expected, name);
});

type Entry = { name: string; content?: string | Buffer; type?: 'symlink' | 'link' | 'directory'; target?: string };

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type) pack.entry({ name: e.name, type: e.type, ...(e.target ? { linkname: e.target } : {}) });
    else pack.entry({ name: e.name }, e.content ?? '');
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const inspect = async (entries: Entry[]) => inspectTarball(Readable.from([await tarOf(entries)]), 'none', 'image.tar');
const yamlA = 'architecture: x86_64\ncreation_date: 1\n';
const yamlB = 'architecture: aarch64\ncreation_date: 1\n';

test('tarball: one metadata.yaml, however its name is spelled', async () => {
  const ok = await inspect([{ name: './metadata.yaml', content: yamlA }, { name: './rootfs/', type: 'directory' }]);
  assert.equal(ok.metadataYaml, yamlA);
  assert.equal(ok.hasRootfsDir, true);
  for (const second of ['metadata.yaml', './metadata.yaml', '/metadata.yaml', 'templates/../metadata.yaml', './/metadata.yaml', '../metadata.yaml']) {
    await assert.rejects(inspect([{ name: 'metadata.yaml', content: yamlA }, { name: second, content: yamlB }]), /image\.tar holds more than one metadata\.yaml/, second);
  }
});

test('tarball: metadata.yaml must be a regular file', async () => {
  await assert.rejects(inspect([{ name: 'metadata.yaml', type: 'symlink', target: '/etc/passwd' }]), /has no metadata\.yaml file: its metadata\.yaml is a symlink, not a regular file/);
  await assert.rejects(inspect([{ name: 'real.yaml', content: yamlA }, { name: './metadata.yaml', type: 'link', target: 'real.yaml' }]), /has no metadata\.yaml file: its metadata\.yaml is a link/);
  await assert.rejects(inspect([{ name: 'metadata.yaml/', type: 'directory' }]), /its metadata\.yaml is a directory/);
});

test('tarball: rootfs/ is found under any spelling', async () => {
  for (const name of ['rootfs/x', '/rootfs/bin', './/rootfs/etc/hostname', 'x/../rootfs/etc']) {
    const summary = await inspect([{ name: 'metadata.yaml', content: yamlA }, { name, content: 'x' }]);
    assert.equal(summary.hasRootfsDir, true, name);
  }
  const elsewhere = await inspect([{ name: 'metadata.yaml', content: yamlA }, { name: 'x/rootfs/bin', content: 'x' }]);
  assert.equal(elsewhere.hasRootfsDir, false);
  await assert.rejects(inspect([{ name: 'metadata.yaml', content: yamlA }, { name: './rootfs', type: 'symlink', target: '/' }]), /image\.tar: rootfs is a symlink, not a directory/);
  await assert.rejects(inspect([{ name: 'metadata.yaml', content: yamlA }, { name: 'rootfs', content: 'x' }]), /rootfs is a file, not a directory/);
});

test('tarball: metadata.yaml must be UTF-8', async () => {
  const bytes = Buffer.from(yamlA + 'description: @@\n');
  bytes[bytes.indexOf('@@')] = 0xff;
  await assert.rejects(inspect([{ name: 'metadata.yaml', content: bytes }]), /image\.tar: metadata\.yaml is not valid UTF-8/);
});

test('tarball: rootfs.img must be one self-contained qcow2 disk', async () => {
  const disk = qcow2({ length: 0x30008 });
  const ok = await inspect([{ name: 'metadata.yaml', content: yamlA }, { name: 'rootfs.img', content: disk }]);
  assert.equal(ok.hasRootfsImg, true);
  const bad = async (content: Buffer | string, message: RegExp, extra: Entry[] = []) =>
    assert.rejects(inspect([{ name: 'metadata.yaml', content: yamlA }, { name: './rootfs.img', content }, ...extra]), message);
  await bad('x'.repeat(700), /image\.tar: rootfs\.img is not a usable qcow2 disk: it has no qcow2 magic/);
  await bad('', /rootfs\.img is not a usable qcow2 disk/);
  await bad(qcow2({ length: 0x30008, backingOffset: 0x200n, backingSize: 13 }), /rootfs\.img has a backing file/);
  await bad(qcow2({ length: 0x30008, incompatible: 4n }), /rootfs\.img keeps its data in an external file/);
  await bad(qcow2({ length: 0x30008, extensions: [dataFileName] }), /rootfs\.img names an external data file/);
  // The tables must lie inside the entry, not merely inside the head that was kept.
  await bad(qcow2({ length: 0x20000 }), /rootfs\.img is not a valid qcow2 disk: its L1 table/);
  await bad(disk, /holds more than one rootfs\.img/, [{ name: 'rootfs.img', content: disk }]);
  await assert.rejects(inspect([{ name: 'metadata.yaml', content: yamlA }, { name: '/rootfs.img', type: 'symlink', target: '/dev/sda' }]), /rootfs\.img is a symlink/);
});
