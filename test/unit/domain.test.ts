import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalArchitecture, distroArchitecture } from '../../src/domain/architecture.ts';
import { parseMetadataYaml } from '../../src/domain/metadata.ts';
import { detectFormat } from '../../src/domain/formats.ts';
import { productAliasTarget, productOf, serialOf } from '../../src/domain/product.ts';
import { releaseNames } from '../../src/domain/release-names.ts';
import { buildIndex, buildProducts } from '../../src/domain/simplestreams.ts';
import type { Alias, Image } from '../../src/domain/image.ts';
import { artifactPath } from '../../src/core/publish.ts';
import { imageRecord } from '../helpers/image-record.ts';

test('architecture names normalise as LXD does', () => {
  assert.equal(canonicalArchitecture('amd64'), 'x86_64');
  assert.equal(canonicalArchitecture('arm64'), 'aarch64');
  assert.equal(canonicalArchitecture('armhf'), 'armv7l');
  assert.equal(canonicalArchitecture('ppc64el'), 'ppc64le');
  assert.equal(canonicalArchitecture('i386'), 'i686');
  assert.equal(canonicalArchitecture('loong64'), 'loongarch64');
  assert.equal(canonicalArchitecture('x86_64'), 'x86_64');
  assert.equal(canonicalArchitecture('pdp11'), undefined);
  assert.equal(distroArchitecture('x86_64'), 'amd64');
  assert.equal(distroArchitecture('riscv64'), 'riscv64');
});

test('metadata.yaml: required fields, normalisation and clear errors', () => {
  const ok = parseMetadataYaml('architecture: amd64\ncreation_date: 1700000000\nexpiry_date: 1800000000\nproperties:\n  os: Debian\n  release: 12\n');
  assert.equal(ok.architecture, 'x86_64');
  assert.equal(ok.architectureRaw, 'amd64');
  assert.equal(ok.creationDate, 1700000000);
  assert.equal(ok.expiryDate, 1800000000);
  assert.deepEqual(ok.properties, { os: 'Debian', release: '12' });
  assert.throws(() => parseMetadataYaml('creation_date: 1'), /no architecture/);
  assert.throws(() => parseMetadataYaml('architecture: x86_64'), /no creation_date/);
  assert.throws(() => parseMetadataYaml('architecture: x86_64\ncreation_date: 0'), /no creation_date/);
  assert.throws(() => parseMetadataYaml('architecture: vax\ncreation_date: 1'), /unknown architecture "vax"/);
  assert.throws(() => parseMetadataYaml('architecture: [x\n'), /not valid YAML/);
  assert.throws(() => parseMetadataYaml('- a\n- b\n'), /must be a mapping/);
  assert.throws(() => parseMetadataYaml('architecture: x86_64\ncreation_date: soon'), /creation_date must be a Unix timestamp/);
});

test('formats are told by magic bytes, not names', () => {
  const head = (...bytes: number[]) => Buffer.concat([Buffer.from(bytes), Buffer.alloc(512)]);
  assert.deepEqual(detectFormat(head(0x1f, 0x8b)), { kind: 'tarball', compression: 'gzip' });
  assert.deepEqual(detectFormat(head(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)), { kind: 'tarball', compression: 'xz' });
  assert.deepEqual(detectFormat(head(0x28, 0xb5, 0x2f, 0xfd)), { kind: 'tarball', compression: 'zstd' });
  assert.deepEqual(detectFormat(head(0x42, 0x5a, 0x68)), { kind: 'tarball', compression: 'bzip2' });
  assert.deepEqual(detectFormat(head(0x68, 0x73, 0x71, 0x73)), { kind: 'squashfs' });
  assert.deepEqual(detectFormat(head(0x51, 0x46, 0x49, 0xfb)), { kind: 'qcow2' });
  const tar = Buffer.alloc(512);
  tar.write('ustar', 257);
  assert.deepEqual(detectFormat(tar), { kind: 'tarball', compression: 'none' });
  assert.equal(detectFormat(Buffer.from('hello world')), undefined);
});

let counter = 0;
function image(overrides: Partial<Image> & { props?: Record<string, string>; root?: 'squashfs' | 'tar' | 'qcow2' | null; meta?: string }): Image {
  counter++;
  const fp = overrides.fingerprint ?? counter.toString(16).padStart(64, 'a');
  const root = overrides.root === undefined ? 'squashfs' : overrides.root;
  const format =
    root === 'squashfs' ? { kind: 'squashfs' as const } : root === 'qcow2' ? { kind: 'qcow2' as const } : { kind: 'tarball' as const, compression: 'xz' as const };
  return imageRecord({
    fingerprint: fp,
    type: root === 'qcow2' ? 'virtual-machine' : 'container',
    uploadedAt: `2026-11-22T08:00:${String(counter % 60).padStart(2, '0')}.000Z`,
    properties: overrides.props ?? { os: 'Debian', release: '12', architecture: 'amd64' },
    metadata: { sha256: overrides.meta ?? 'm'.repeat(64), size: 1, format: { kind: 'tarball', compression: 'xz' } },
    rootfs: root === null ? null : { sha256: fp.replace(/a/g, 'b'), size: 2, format },
    ...overrides,
  });
}

test('products group builds as images.linuxcontainers.org does', () => {
  const i = image({ props: { os: 'Debian', release: '12', variant: 'cloud', architecture: 'amd64' } });
  const p = productOf(i);
  assert.equal(p.key, 'debian:12:amd64:cloud');
  assert.deepEqual(p.aliases, ['debian/12/cloud', 'debian/bookworm/cloud']);
  assert.deepEqual(productOf(image({})).aliases, ['debian/12/default', 'debian/12', 'debian/bookworm/default', 'debian/bookworm']);
  assert.equal(serialOf(image({})), '20261122_07:42');
  assert.equal(serialOf(image({ props: { os: 'a', release: 'b', serial: '20240101_01:00' } })), '20240101_01:00');
  assert.equal(serialOf(image({ props: { os: 'a', release: 'b', serial: 'build-7' } })), '20261122_07:42');
  assert.equal(productOf(image({ props: {} })).key.startsWith('image:'), true);
});

test('a release answers to all its names: codename and number, built in and configured', () => {
  const bookworm = image({ props: { os: 'Debian', release: 'bookworm', architecture: 'amd64' } });
  assert.deepEqual(productOf(bookworm).aliases, ['debian/bookworm/default', 'debian/bookworm', 'debian/12/default', 'debian/12']);
  assert.equal(productOf(bookworm).key, 'debian:bookworm:amd64:default', 'the product keeps the release it was built with');
  const noble = image({ props: { os: 'Ubuntu', release: '24.04', variant: 'cloud', architecture: 'amd64' } });
  assert.deepEqual(productOf(noble).aliases, ['ubuntu/24.04/cloud', 'ubuntu/noble/cloud']);
  // An upstream's own aliases (a mirror) gain the other names too, once.
  const mirrored = image({ props: { os: 'Debian', release: 'trixie', architecture: 'amd64' }, productAliases: ['debian/trixie', 'debian/13', 'trixie-latest'] });
  assert.deepEqual(productOf(mirrored).aliases, ['debian/trixie', 'debian/13', 'trixie-latest']);
  // Unknown releases and OSes are left alone.
  assert.deepEqual(productOf(image({ props: { os: 'Alpine', release: '3.20', architecture: 'amd64' } })).aliases, ['alpine/3.20/default', 'alpine/3.20']);
  // A configured table replaces the built-in entry of its OS only.
  const names = releaseNames({ Debian: { bookworm: ['12', 'stable'] }, mylinux: { cobalt: 7 } });
  assert.deepEqual(productOf(bookworm, names).aliases, ['debian/bookworm/default', 'debian/bookworm', 'debian/12/default', 'debian/stable/default', 'debian/12', 'debian/stable']);
  assert.deepEqual(productOf(image({ props: { os: 'Debian', release: 'trixie', architecture: 'amd64' } }), names).aliases, ['debian/trixie/default', 'debian/trixie']);
  assert.deepEqual(productOf(noble, names).aliases, ['ubuntu/24.04/cloud', 'ubuntu/noble/cloud']);
  assert.deepEqual(productOf(image({ props: { os: 'MyLinux', release: '7', architecture: 'amd64' } }), names).aliases, ['mylinux/7/default', 'mylinux/7', 'mylinux/cobalt/default', 'mylinux/cobalt']);
  // And the REST protocol finds the image by either name.
  assert.equal(productAliasTarget([bookworm], 'debian/12', 'x86_64')?.fingerprint, bookworm.fingerprint);
  assert.equal(productAliasTarget([bookworm], 'debian/12/amd64', 'x86_64')?.fingerprint, bookworm.fingerprint);
  assert.equal(productAliasTarget([bookworm], 'debian/13', 'x86_64'), undefined);
});

test('simplestreams: both vocabularies, combined hashes, private images left out', () => {
  const sq = image({ root: 'squashfs' });
  const tar = image({ root: 'tar' });
  const vm = image({ root: 'qcow2' });
  const secret = image({ public: false, props: { os: 'Secret', release: '1' } });
  const doc = buildProducts([sq, tar, vm, secret], [], artifactPath);
  assert.deepEqual(Object.keys(doc.products), ['debian:12:amd64:default']);
  const product = doc.products['debian:12:amd64:default']!;
  assert.equal(product.aliases, 'debian/12/default,debian/12,debian/bookworm/default,debian/bookworm');
  assert.equal(product.arch, 'amd64');
  const versions = Object.keys(product.versions);
  assert.deepEqual(versions, ['20261122_07:42']);
  const items = product.versions['20261122_07:42']!.items;
  for (const ftype of ['lxd.tar.xz', 'incus.tar.xz']) {
    assert.equal(items[ftype]!.ftype, ftype);
    assert.equal(items[ftype]!.combined_squashfs_sha256, sq.fingerprint);
    assert.equal(items[ftype]!['combined_disk-kvm-img_sha256'], vm.fingerprint);
    assert.equal(items[ftype]!.combined_rootxz_sha256, tar.fingerprint);
  }
  assert.equal(items['root.squashfs']!.ftype, 'squashfs');
  assert.equal(items['root.tar.xz']!.ftype, 'root.tar.xz');
  assert.equal(items['disk.qcow2']!.ftype, 'disk-kvm.img');
  assert.equal(items['disk.qcow2']!.path, `files/${vm.rootfs!.sha256}.qcow2`);
  assert.equal(typeof items['disk.qcow2']!.size, 'number');
  const index = buildIndex(doc);
  assert.deepEqual(index.index.images!.products, ['debian:12:amd64:default']);
  assert.equal(index.index.images!.path, 'streams/v1/images.json');
});

test('simplestreams: unified images, and builds that cannot share a version', () => {
  const unifiedVm = image({ root: null, type: 'virtual-machine', props: { os: 'U', release: '1' } });
  const doc = buildProducts([unifiedVm], [], artifactPath);
  const items = Object.values(doc.products)[0]!.versions['20261122_07:42']!.items;
  assert.equal(items['lxd_combined.tar.gz'], undefined, 'LXD cannot tell a unified VM from a container');
  assert.equal(items['incus_combined.tar.gz']!.combined_type, 'virtual-machine');

  // Two different builds with the same serial get distinct version keys, newest upload last.
  const a = image({ meta: '1'.repeat(64) });
  const b = image({ meta: '2'.repeat(64) });
  const twice = buildProducts([a, b], [], artifactPath);
  assert.deepEqual(Object.keys(Object.values(twice.products)[0]!.versions), ['20261122_07:42', '20261122_07:42-1']);
});

test('simplestreams: a hand-made alias names one image, never listing it twice', () => {
  const old = image({ props: { os: 'Debian', release: '12', serial: '20240101_00:00' } });
  const newest = image({ props: { os: 'Debian', release: '12', serial: '20250101_00:00' } });
  const aliases: Alias[] = [
    { name: 'pinned', fingerprint: old.fingerprint, description: '', type: 'container' },
    { name: 'latest', fingerprint: newest.fingerprint, description: '', type: 'container' },
  ];
  const doc = buildProducts([old, newest], aliases, artifactPath);
  const main = doc.products['debian:12:amd64:default']!;
  assert.equal(main.aliases, 'debian/12/default,debian/12,debian/bookworm/default,debian/bookworm,latest');
  assert.deepEqual(Object.keys(main.versions), ['20250101_00:00']);
  const pinned = doc.products[`debian:12:amd64:default:${old.fingerprint}`]!;
  assert.equal(pinned.aliases, 'pinned');
  assert.deepEqual(Object.keys(pinned.versions), ['20240101_00:00']);
});
