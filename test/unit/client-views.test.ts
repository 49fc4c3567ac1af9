/**
 * What each client is offered over simplestreams: Incus before 7.1 never sees a unified VM image
 * (it would take it for a container), and a hand alias names its own image's type only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProducts, viewForUserAgent } from '../../src/domain/simplestreams.ts';
import type { Image } from '../../src/domain/image.ts';
import { imageRecord } from '../helpers/image-record.ts';

const fp = (c: string) => c.repeat(64);
const path = (blob: { sha256: string }) => `files/${blob.sha256}`;
const props = { os: 'Testlinux', release: '1.0', variant: 'default', architecture: 'amd64', serial: '20261101_00:00' };

test('the view follows the User-Agent: Incus before 7.1 gets its own, everyone else the full one', () => {
  assert.equal(viewForUserAgent('Incus 6.0.4 (Linux; x86_64; 6.1.0) (incus)'), 'incus-before-7.1');
  assert.equal(viewForUserAgent('Incus 7.0.1 (Linux; aarch64)'), 'incus-before-7.1');
  assert.equal(viewForUserAgent('Incus 7.1.0 (Linux; x86_64)'), 'full');
  assert.equal(viewForUserAgent('Incus 10.0 (Linux; x86_64)'), 'full');
  assert.equal(viewForUserAgent('LXD 5.0.2 (Linux; x86_64)'), 'full');
  assert.equal(viewForUserAgent('curl/7.88.1'), 'full');
  assert.equal(viewForUserAgent(undefined), 'full');
});

test('a unified VM image is left out of the view of Incus before 7.1, and offered to the others with combined_type', () => {
  const unifiedVm = imageRecord({ fingerprint: fp('a'), type: 'virtual-machine', properties: { ...props, os: 'Univm' } });
  const unified = imageRecord({ fingerprint: fp('b'), properties: props });
  const full = buildProducts([unifiedVm, unified], [], path);
  const items = Object.values(full.products).flatMap((p) => Object.values(p.versions).flatMap((v) => Object.values(v.items)));
  assert.ok(items.some((i) => i.sha256 === fp('a') && i.ftype === 'incus_combined.tar.gz' && i.combined_type === 'virtual-machine'));
  assert.ok(!items.some((i) => i.sha256 === fp('a') && i.ftype === 'lxd_combined.tar.gz'), 'LXD cannot mark a unified item as a VM');
  const legacy = buildProducts([unifiedVm, unified], [], path, { view: 'incus-before-7.1' });
  const legacyItems = Object.values(legacy.products).flatMap((p) => Object.values(p.versions).flatMap((v) => Object.values(v.items)));
  assert.ok(!legacyItems.some((i) => i.sha256 === fp('a')), 'the unified VM is not offered at all');
  assert.ok(legacyItems.some((i) => i.sha256 === fp('b')), 'the unified container still is');
  assert.equal(Object.keys(legacy.products).length, 1, 'a product left empty is not published');
});

test('a hand alias on one type of a product holding both names that type only; the product aliases name both', () => {
  const meta = { sha256: fp('1'), size: 1, format: { kind: 'tarball' as const, compression: 'xz' as const } };
  const container: Image = imageRecord({ fingerprint: fp('c'), properties: props, metadata: meta, rootfs: { sha256: fp('2'), size: 2, format: { kind: 'squashfs' } } });
  const vm: Image = imageRecord({ fingerprint: fp('d'), type: 'virtual-machine', properties: props, metadata: meta, rootfs: { sha256: fp('3'), size: 3, format: { kind: 'qcow2' } } });
  const before = buildProducts([container, vm], [], path);
  assert.equal(Object.keys(before.products).length, 1, 'without hand aliases, one product holds both types (as on images.linuxcontainers.org)');

  const doc = buildProducts([container, vm], [{ name: 'my-vm', fingerprint: vm.fingerprint, description: '', type: 'virtual-machine' }], path);
  const products = Object.values(doc.products);
  assert.equal(products.length, 2);
  const holding = (f: string) => products.filter((p) => Object.values(p.versions).some((v) => Object.values(v.items).some((i) => i.ftype.endsWith('.tar.xz') && Object.entries(i).some(([k, x]) => k.startsWith('combined_') && x === f))));
  assert.equal(holding(vm.fingerprint).length, 1);
  assert.equal(holding(container.fingerprint).length, 1);
  const vmAliases = holding(vm.fingerprint)[0]!.aliases.split(',');
  const containerAliases = holding(container.fingerprint)[0]!.aliases.split(',');
  assert.ok(vmAliases.includes('my-vm'));
  assert.ok(!containerAliases.includes('my-vm'), 'the container must not answer to the VM alias');
  for (const name of ['testlinux/1.0', 'testlinux/1.0/default']) {
    assert.ok(vmAliases.includes(name) && containerAliases.includes(name), `${name} names both types`);
  }
});

test('deltas: squashfs ones from a listed version are offered, VM disk ones never (Incus applies them wrongly)', () => {
  const rootfs = (c: string, kind: 'squashfs' | 'qcow2') => ({ sha256: fp(c), size: 10, format: { kind } as const });
  const delta = (c: string, ftype: string) => ({ sha256: fp(c), size: 3, format: { kind: 'vcdiff' } as const, ftype, base: '20261001_00:00' });
  const meta = { sha256: fp('m'), size: 5, format: { kind: 'tarball', compression: 'xz' } as const };
  const container = imageRecord({ fingerprint: fp('c'), metadata: meta, rootfs: rootfs('s', 'squashfs'), properties: props, deltas: [delta('d', 'squashfs.vcdiff')] });
  const vm = imageRecord({ fingerprint: fp('e'), type: 'virtual-machine', metadata: meta, rootfs: rootfs('q', 'qcow2'), properties: props, deltas: [delta('f', 'disk-kvm.img.vcdiff')] });
  // The version the deltas apply to, listed in the same product (its serial is their base).
  const base = imageRecord({ fingerprint: fp('b'), metadata: { ...meta, sha256: fp('n') }, rootfs: rootfs('o', 'squashfs'), properties: { ...props, serial: '20261001_00:00' } });
  // A second delta, from an older listed version: never offered beside the first.
  const older = imageRecord({ fingerprint: fp('a'), metadata: { ...meta, sha256: fp('k') }, rootfs: rootfs('j', 'squashfs'), properties: { ...props, serial: '20260901_00:00' } });
  container.deltas.push({ ...delta('6', 'squashfs.vcdiff'), base: '20260901_00:00' });
  const stranded = imageRecord({ ...container, fingerprint: fp('9'), rootfs: rootfs('8', 'squashfs'), properties: { ...props, os: 'Other' }, deltas: [delta('7', 'squashfs.vcdiff')] });
  for (const view of ['full', 'incus-before-7.1'] as const) {
    const doc = buildProducts([container, vm, base, older, stranded], [], path, { view });
    const items = Object.values(doc.products).flatMap((p) => Object.values(p.versions).flatMap((v) => Object.values(v.items)));
    const squashDelta = items.find((i) => i.sha256 === fp('d'));
    assert.equal(squashDelta?.ftype, 'squashfs.vcdiff', view);
    assert.equal(squashDelta?.delta_base, '20261001_00:00', view);
    assert.ok(!items.some((i) => i.sha256 === fp('f') || i.ftype.startsWith('disk-kvm.img.')), `${view}: no VM delta`);
    assert.ok(!items.some((i) => i.sha256 === fp('7')), `${view}: no delta from a version its product does not list`);
    assert.ok(!items.some((i) => i.sha256 === fp('6')), `${view}: one delta per version, from the newest listed base`);
  }
});
