/**
 * Checks the image fixture builders against the real tools, so a broken fixture shows up here
 * rather than as a puzzling failure in an import or server test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import {
  buildMetadataTarball,
  buildQcow2,
  buildRootfsTarball,
  buildSquashfs,
  buildUnified,
  sha256OfFiles,
  truncateCopy,
  type Compression,
} from '../fixtures/images.ts';

const exec = promisify(execFile);

/** A fresh directory per test, removed afterwards whatever happens. */
async function inTemp(body: (dir: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-fixtures-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function sh(cmd: string, args: string[]): Promise<string> {
  return (await exec(cmd, args, { maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' })).stdout;
}

/**
 * tar arguments to read a tarball. GNU tar detects gzip/xz/bzip2/zstd itself, but 1.34 knows
 * nothing of lz4 (no --lz4, no magic detection), so name the program for those.
 */
function tarArgs(path: string): string[] {
  return path.endsWith('.lz4') ? ['-I', 'lz4', '-f', path] : ['-f', path];
}

async function tarList(path: string): Promise<string[]> {
  return (await sh('tar', ['-t', ...tarArgs(path)])).split('\n').filter(Boolean);
}

async function tarVerbose(path: string): Promise<string> {
  return sh('tar', ['-tv', ...tarArgs(path)]);
}

async function tarCat(path: string, entry: string): Promise<string> {
  return sh('tar', ['-xO', ...tarArgs(path), entry]);
}

async function head(path: string, bytes: number): Promise<Buffer> {
  const fh = await open(path);
  try {
    const buf = Buffer.alloc(bytes);
    await fh.read(buf, 0, bytes, 0);
    return buf;
  } finally {
    await fh.close();
  }
}

const compressions: Array<[Compression, string]> = [
  ['none', '.tar'],
  ['gzip', '.tar.gz'],
  ['xz', '.tar.xz'],
  ['bzip2', '.tar.bz2'],
  ['zstd', '.tar.zst'],
  ['lz4', '.tar.lz4'],
];

test('metadata tarball in every compression lists metadata.yaml, with default names', () =>
  inTemp(async (dir) => {
    for (const [compression, ext] of compressions) {
      const meta = await buildMetadataTarball(dir, { compression });
      assert.equal(basename(meta.path), `meta${ext}`);
      assert.deepEqual(await tarList(meta.path), ['metadata.yaml']);
      assert.match(meta.sha256, /^[0-9a-f]{64}$/);
      assert.equal(meta.sha256, await sha256OfFiles(meta.path));
      assert.ok(meta.size > 0);
    }
  }));

test('default compression is xz for split parts and gzip for unified', () =>
  inTemp(async (dir) => {
    assert.equal(basename((await buildMetadataTarball(dir)).path), 'meta.tar.xz');
    assert.equal(basename((await buildRootfsTarball(dir)).path), 'rootfs.tar.xz');
    assert.equal(basename((await buildUnified(dir)).path), 'unified.tar.gz');
    assert.equal(basename((await buildSquashfs(dir)).path), 'rootfs.squashfs');
    assert.equal(basename((await buildQcow2(dir)).path), 'disk.qcow2');
    const xzMagic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
    assert.deepEqual(await head(join(dir, 'meta.tar.xz'), 6), xzMagic);
    assert.deepEqual(await head(join(dir, 'unified.tar.gz'), 2), Buffer.from([0x1f, 0x8b]));
  }));

test('metadata.yaml carries the defaults', () =>
  inTemp(async (dir) => {
    const meta = await buildMetadataTarball(dir);
    const doc = parse(await tarCat(meta.path, 'metadata.yaml'));
    assert.deepEqual(doc, {
      architecture: 'x86_64',
      creation_date: 1763798520,
      properties: { os: 'Testlinux', release: '1.0', variant: 'default', architecture: 'amd64', description: 'Testlinux 1.0' },
    });
  }));

test('metadata.yaml carries requested fields and templates', () =>
  inTemp(async (dir) => {
    const meta = await buildMetadataTarball(dir, {
      architecture: 'aarch64',
      creationDate: 0,
      expiryDate: 1900000000,
      properties: { os: 'Other', release: '7' },
      withTemplates: true,
    });
    assert.deepEqual(await tarList(meta.path), ['metadata.yaml', 'templates/', 'templates/hostname.tpl']);
    const doc = parse(await tarCat(meta.path, 'metadata.yaml'));
    assert.equal(doc.architecture, 'aarch64');
    assert.equal(doc.creation_date, 0);
    assert.equal(doc.expiry_date, 1900000000);
    assert.deepEqual(doc.properties, { os: 'Other', release: '7' });
    assert.deepEqual(doc.templates, { '/etc/hostname': { when: ['create', 'copy'], template: 'hostname.tpl' } });
    assert.match(await tarCat(meta.path, 'templates/hostname.tpl'), /container\.name/);
  }));

test('omit, rawYaml and noMetadataYaml make the broken variants', () =>
  inTemp(async (dir) => {
    const noArch = await buildMetadataTarball(dir, { name: 'a.tar.xz', omit: ['architecture'] });
    const noArchDoc = parse(await tarCat(noArch.path, 'metadata.yaml'));
    assert.equal('architecture' in noArchDoc, false);
    assert.equal(noArchDoc.creation_date, 1763798520);

    const noDate = await buildMetadataTarball(dir, { name: 'b.tar.xz', omit: ['creation_date'] });
    assert.equal('creation_date' in parse(await tarCat(noDate.path, 'metadata.yaml')), false);

    const raw = 'architecture: [x86_64\n';
    const bad = await buildMetadataTarball(dir, { name: 'c.tar.xz', rawYaml: raw });
    assert.equal(await tarCat(bad.path, 'metadata.yaml'), raw);
    assert.throws(() => parse(raw));

    const none = await buildMetadataTarball(dir, { name: 'd.tar.xz', noMetadataYaml: true });
    assert.equal((await tarList(none.path)).includes('metadata.yaml'), false);
  }));

test('rootfs tarball holds the tree at top level, not under rootfs/', () =>
  inTemp(async (dir) => {
    const root = await buildRootfsTarball(dir, { compression: 'zstd', seed: 'hello' });
    assert.equal(basename(root.path), 'rootfs.tar.zst');
    const names = await tarList(root.path);
    assert.ok(names.includes('./bin/busybox'), names.join(' '));
    assert.ok(names.includes('./etc/os-release'));
    assert.ok(!names.some((n) => n.replace(/^\.\//, '').startsWith('rootfs/')));
    assert.equal(await tarCat(root.path, './etc/wharf-seed'), 'hello\n');
    const listing = await tarVerbose(root.path);
    // Root of a container must be traversable; owners are numeric root.
    assert.match(listing, /^drwxr-xr-x 0\/0 .* \.\/$/m);
    assert.match(listing, /^lrwxrwxrwx 0\/0 .* \.\/bin\/sh -> busybox$/m);
    assert.match(listing, /^drwxrwxrwt 0\/0 .* \.\/tmp\/$/m);
  }));

test('padMiB adds incompressible, seed-determined data', () =>
  inTemp(async (dir) => {
    const plain = await buildRootfsTarball(dir, { compression: 'gzip', name: 'plain.tar.gz', seed: 's' });
    const padded = await buildRootfsTarball(dir, { compression: 'gzip', name: 'padded.tar.gz', seed: 's', padMiB: 2 });
    assert.ok(padded.size - plain.size > 2 * 1024 * 1024 * 0.98, `padding compressed too well: ${padded.size - plain.size}`);
    const listing = await tarVerbose(padded.path);
    assert.match(listing, / 2097152 .* \.\/padding\.bin$/m);
    const again = await buildRootfsTarball(dir, { compression: 'gzip', name: 'again.tar.gz', seed: 's', padMiB: 2 });
    assert.equal(again.sha256, padded.sha256);
    const other = await buildRootfsTarball(dir, { compression: 'gzip', name: 'other.tar.gz', seed: 't', padMiB: 2 });
    assert.notEqual(other.sha256, padded.sha256);
  }));

test('squashfs is a real squashfs with the tree at its root', () =>
  inTemp(async (dir) => {
    const sq = await buildSquashfs(dir, { seed: 'sq', padMiB: 1 });
    assert.equal((await head(sq.path, 4)).toString('latin1'), 'hsqs');
    assert.match(await sh('unsquashfs', ['-s', sq.path]), /Found a valid SQUASHFS 4:0 superblock/);
    const listing = await sh('unsquashfs', ['-lls', '-d', '', sq.path]);
    assert.match(listing, /^drwxr-xr-x root\/root .* \/bin$/m);
    assert.match(listing, /\/bin\/busybox$/m);
    assert.match(listing, /\/padding\.bin$/m);
    assert.match(listing, /^drwxr-xr-x root\/root\s+\d+ \S+ \S+ $/m); // the root directory
    const seed = await sh('unsquashfs', ['-cat', sq.path, 'etc/wharf-seed']);
    assert.equal(seed, 'sq\n');
  }));

test('qcow2 has the magic and the requested virtual size', () =>
  inTemp(async (dir) => {
    const disk = await buildQcow2(dir, { sizeMiB: 32, seed: 'vm' });
    assert.deepEqual(await head(disk.path, 4), Buffer.from('QFI\xfb', 'latin1'));
    const info = JSON.parse(await sh('qemu-img', ['info', '--output=json', disk.path]));
    assert.equal(info.format, 'qcow2');
    assert.equal(info['virtual-size'], 32 * 1024 * 1024);
    await sh('qemu-img', ['check', '-q', disk.path]);
    const small = await buildQcow2(dir, { name: 'small.qcow2', sizeMiB: 0.25 });
    assert.equal(JSON.parse(await sh('qemu-img', ['info', '--output=json', small.path]))['virtual-size'], 256 * 1024);
  }));

test('unified container tarball holds metadata.yaml and rootfs/', () =>
  inTemp(async (dir) => {
    const uni = await buildUnified(dir, { compression: 'bzip2', architecture: 'aarch64', withTemplates: true, seed: 'u' });
    assert.equal(basename(uni.path), 'unified.tar.bz2');
    const names = await tarList(uni.path);
    for (const n of ['metadata.yaml', 'templates/hostname.tpl', 'rootfs/', 'rootfs/bin/busybox', 'rootfs/etc/wharf-seed']) {
      assert.ok(names.includes(n), `${n} missing from ${names.join(' ')}`);
    }
    assert.ok(!names.includes('rootfs.img'));
    assert.equal(parse(await tarCat(uni.path, 'metadata.yaml')).architecture, 'aarch64');
    assert.equal(await tarCat(uni.path, 'rootfs/etc/wharf-seed'), 'u\n');
    assert.match(await tarVerbose(uni.path), /^drwxr-xr-x 0\/0 .* rootfs\/$/m);
  }));

test('unified VM tarball holds metadata.yaml and a qcow2 rootfs.img', () =>
  inTemp(async (dir) => {
    const uni = await buildUnified(dir, { vm: true, compression: 'xz' });
    assert.deepEqual(await tarList(uni.path), ['metadata.yaml', 'rootfs.img']);
    const extracted = await mkdtemp(join(dir, 'x-'));
    await sh('tar', ['-xf', uni.path, '-C', extracted]);
    assert.deepEqual(await head(join(extracted, 'rootfs.img'), 4), Buffer.from('QFI\xfb', 'latin1'));
  }));

test('same options give the same bytes; different seeds differ', () =>
  inTemp(async (dir) => {
    const pairs: Array<[string, (name: string, seed: string) => Promise<{ sha256: string }>]> = [
      ['meta', (name) => buildMetadataTarball(dir, { name: `${name}.tar.xz`, withTemplates: true })],
      ['rootfs', (name, seed) => buildRootfsTarball(dir, { name: `${name}.tar.xz`, seed })],
      ['squashfs', (name, seed) => buildSquashfs(dir, { name: `${name}.squashfs`, seed })],
      ['qcow2', (name, seed) => buildQcow2(dir, { name: `${name}.qcow2`, seed })],
      ['unified', (name, seed) => buildUnified(dir, { name: `${name}.tar.gz`, seed })],
      ['unified-vm', (name, seed) => buildUnified(dir, { name: `${name}.tar.gz`, seed, vm: true })],
    ];
    for (const [kind, build] of pairs) {
      const a = await build(`${kind}-a`, 'one');
      const b = await build(`${kind}-b`, 'one');
      assert.equal(a.sha256, b.sha256, `${kind} is not deterministic`);
      if (kind === 'meta') continue; // metadata has no seed
      const c = await build(`${kind}-c`, 'two');
      assert.notEqual(a.sha256, c.sha256, `${kind} ignores the seed`);
    }
  }));

test('sha256OfFiles hashes the concatenation, like cat a b | sha256sum', () =>
  inTemp(async (dir) => {
    const meta = await buildMetadataTarball(dir);
    const sq = await buildSquashfs(dir);
    const expected = (await sh('sh', ['-c', 'cat "$1" "$2" | sha256sum', 'sh', meta.path, sq.path])).split(' ')[0];
    assert.equal(await sha256OfFiles(meta.path, sq.path), expected);
    assert.notEqual(await sha256OfFiles(sq.path, meta.path), expected);
    assert.equal(await sha256OfFiles(), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  }));

test('truncateCopy keeps the first fraction of bytes', () =>
  inTemp(async (dir) => {
    const sq = await buildSquashfs(dir, { padMiB: 1 });
    const cut = await truncateCopy(sq.path, join(dir, 'cut.squashfs'), 0.5);
    assert.equal(cut.size, Math.floor(sq.size * 0.5));
    const original = await readFile(sq.path);
    assert.deepEqual(await readFile(cut.path), original.subarray(0, cut.size));
    assert.equal((await truncateCopy(sq.path, join(dir, 'none'), 0)).size, 0);
    assert.equal((await truncateCopy(sq.path, join(dir, 'all'), 1)).sha256, sq.sha256);
    await assert.rejects(truncateCopy(sq.path, join(dir, 'bad'), 1.5), /keepFraction/);
  }));

test('a failing tool rejects with its stderr', () =>
  inTemp(async (dir) => {
    await assert.rejects(buildMetadataTarball(join(dir, 'missing')), /ENOENT|no such file/i);
    // tar itself fails: the output directory does not exist (the scratch dir does).
    await assert.rejects(buildMetadataTarball(dir, { name: 'nope/meta.tar.xz' }), /tar .* failed .*Cannot open/s);
    // No build scratch is left behind after a failure.
    assert.deepEqual((await sh('ls', ['-A', dir])).trim(), '');
  }));
