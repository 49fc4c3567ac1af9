/**
 * What the publisher keeps: renderings that come out the same bytes are kept once, in every
 * serving process (a 1,000-image index is ~0.9 MB, and its gzip, per copy).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IndexPublisher } from '../../src/core/publish.ts';
import { MemoryMetaStore } from '../../src/meta/memory.ts';
import { MemoryBlobStore } from '../../src/blob/memory.ts';
import { releaseNames } from '../../src/domain/release-names.ts';
import { silentLogger } from '../../src/log.ts';
import { productsPath } from '../../src/domain/simplestreams.ts';
import { imageRecord } from '../helpers/image-record.ts';

const fp = (c: string) => c.repeat(64);
const props = { os: 'Testlinux', release: '1.0', variant: 'default', architecture: 'amd64', serial: '20261101_00:00' };

async function publisherOf(images: Parameters<typeof imageRecord>[0][]) {
  const meta = new MemoryMetaStore();
  for (const image of images) await meta.insertImage(imageRecord(image), []);
  const publisher = new IndexPublisher({ meta, blobs: new MemoryBlobStore(), log: silentLogger, graceSeconds: 0, releaseNames: releaseNames() });
  await publisher.refresh();
  return publisher;
}

test('client views and API lists that render the same bytes share one copy; those that differ do not', async () => {
  const containers = await publisherOf([{ fingerprint: fp('a'), properties: props, public: true }]);
  assert.equal(containers.document(productsPath, 'full'), containers.document(productsPath, 'incus-before-7.1'), 'one copy of images.json for both views');
  assert.equal(await containers.apiImageList('public', true), await containers.apiImageList('all', true), 'every image public: one list');

  // A unified VM image sets the views apart (Incus before 7.1 is not offered it); a private image the lists.
  const mixed = await publisherOf([
    { fingerprint: fp('a'), properties: props, public: true },
    { fingerprint: fp('b'), type: 'virtual-machine', properties: { ...props, os: 'Univm' }, public: true },
    { fingerprint: fp('c'), properties: { ...props, os: 'Hidden' }, public: false },
  ]);
  const full = mixed.document(productsPath, 'full')!;
  const legacy = mixed.document(productsPath, 'incus-before-7.1')!;
  assert.notEqual(full.etag, legacy.etag);
  assert.ok(full.body.includes(fp('b')) && !legacy.body.includes(fp('b')));
  const [publicList, allList] = [await mixed.apiImageList('public', true), await mixed.apiImageList('all', true)];
  assert.ok(!publicList.includes(fp('c')) && allList.includes(fp('c')));
});
