import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readIndex, readProducts } from '../../src/domain/simplestreams-read.ts';
import { buildIndex, buildProducts } from '../../src/domain/simplestreams.ts';
import { artifactPath } from '../../src/core/publish.ts';
import { imageRecord } from '../helpers/image-record.ts';
import type { Image } from '../../src/domain/image.ts';

const h = (c: string) => c.repeat(64);

function image(fp: string, root: 'squashfs' | 'qcow2' | null, props: Record<string, string> = { os: 'Debian', release: '12', architecture: 'arm64' }): Image {
  return imageRecord({
    fingerprint: h(fp),
    type: root === 'qcow2' ? 'virtual-machine' : 'container',
    architecture: 'aarch64',
    properties: props,
    metadata: { sha256: root ? h('1') : h(fp), size: 1, format: { kind: 'tarball', compression: 'xz' } },
    rootfs: root ? { sha256: h(fp === 'a' ? '2' : '3'), size: 2, format: root === 'qcow2' ? { kind: 'qcow2' } : { kind: 'squashfs' } } : null,
  });
}

test('what wharf publishes reads back as the same images', () => {
  const images = [image('a', 'squashfs'), image('b', 'qcow2'), image('c', null, { os: 'Alpine', release: '3.20', architecture: 'arm64' })];
  const doc = JSON.parse(JSON.stringify(buildProducts(images, [], artifactPath)));
  const read = readProducts(doc);
  assert.deepEqual(read.map((i) => i.fingerprint).sort(), images.map((i) => i.fingerprint).sort());
  const vm = read.find((i) => i.fingerprint === h('b'))!;
  assert.equal(vm.type, 'virtual-machine');
  assert.equal(vm.architecture, 'aarch64');
  assert.equal(vm.metadata.sha256, h('1'));
  assert.equal(vm.rootfs!.ftype, 'disk-kvm.img');
  assert.equal(vm.properties.os, 'Debian');
  assert.equal(vm.version, '20261122_07:42');
  assert.deepEqual(vm.aliases, ['debian/12/default', 'debian/12', 'debian/bookworm/default', 'debian/bookworm']);
  assert.equal(read.find((i) => i.fingerprint === h('c'))!.rootfs, null);
  assert.deepEqual(readIndex(buildIndex(doc)), ['streams/v1/images.json']);
});

test('either vocabulary alone is enough; odd entries are skipped as clients skip them', () => {
  const meta = { ftype: 'incus.tar.xz', path: 'm.tar.xz', sha256: h('1'), size: 10, combined_squashfs_sha256: h('9') };
  const doc = {
    products: {
      'x:1:amd64:default': {
        arch: 'amd64',
        os: 'X',
        release: '1',
        aliases: 'x/1',
        versions: {
          '20240101_00:00': {
            items: {
              'incus.tar.xz': meta,
              'root.squashfs': { ftype: 'squashfs', path: 'r.squashfs', sha256: h('2'), size: 20 },
              'delta.vcdiff': { ftype: 'squashfs.vcdiff', path: 'd.vcdiff', sha256: h('4'), size: 5, delta_base: '20231201_00:00' },
            },
          },
          'not-a-date': { items: { 'incus.tar.xz': { ...meta, combined_squashfs_sha256: h('8') } } },
        },
      },
      'y:1:pdp11:default': { arch: 'pdp11', versions: { '20240101': { items: { 'lxd.tar.xz': meta } } } },
    },
  };
  const read = readProducts(doc);
  assert.equal(read.length, 1);
  assert.equal(read[0]!.fingerprint, h('9'));
  assert.equal(read[0]!.architecture, 'x86_64');
  assert.deepEqual(read[0]!.deltas.map((d) => d.path), ['d.vcdiff']);
  assert.throws(() => readProducts({}), /not a simplestreams products document/);
});
