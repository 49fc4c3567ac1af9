/**
 * core/collect.ts over the in-memory drivers: the claim/collect contract end to end, without a
 * disk or a database (the drivers' own contracts are in test/conformance/).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBlobStore } from '../../src/blob/memory.ts';
import { MemoryMetaStore } from '../../src/meta/memory.ts';
import { silentLogger } from '../../src/log.ts';
import { defaultReleaseNames } from '../../src/domain/release-names.ts';
import { collectGarbage, commitBlobs } from '../../src/core/collect.ts';
import type { Store } from '../../src/core/context.ts';
import { imageRecord } from '../helpers/image-record.ts';

function memoryStore(): Store {
  return { meta: new MemoryMetaStore(), blobs: new MemoryBlobStore(), log: silentLogger, graceSeconds: 3600, releaseNames: defaultReleaseNames };
}

async function stage(store: Store, text: string) {
  const writer = await store.blobs.createWriter();
  await writer.write(Buffer.from(text));
  return writer;
}

test('commitBlobs records what it stores; collectGarbage takes it once no image uses it, after the grace period', async () => {
  const store = memoryStore();
  const writer = await stage(store, 'a unified image');
  const sha = await writer.digest();
  const image = imageRecord({ fingerprint: sha, public: false, metadata: { sha256: sha, size: 15, format: { kind: 'tarball', compression: 'none' } } });
  await commitBlobs(store, [writer], () => store.meta.insertImage(image, []));
  assert.deepEqual((await collectGarbage(store)).removed, []);
  await store.meta.deleteImages([sha]);
  // A deleted image's files wait for the grace period (a view or a secret may have named them).
  assert.deepEqual((await collectGarbage(store)).removed, []);
  assert.deepEqual((await collectGarbage(store, { now: new Date(Date.now() + 3600_000 + 1000) })).removed, [sha]);
  assert.equal(await store.blobs.size(sha), undefined);
  assert.equal(await store.meta.getBlob(sha), undefined);
});

test('a file with no record goes at once, unless a live writer claimed it: no clock tells them apart', async () => {
  const store = memoryStore();
  const { sha256 } = await (await stage(store, 'left by a writer that died')).commit();
  assert.deepEqual((await collectGarbage(store)).removed, [sha256], 'stored, unrecorded, unclaimed: a dead writer left it');
  // A writer between storing its file and recording its image: the collector runs right then.
  const writer = await stage(store, 'being recorded');
  const sha = await writer.digest();
  const image = imageRecord({ fingerprint: sha, metadata: { sha256: sha, size: 14, format: { kind: 'tarball', compression: 'none' } } });
  await commitBlobs(store, [writer], async () => {
    assert.equal(await store.blobs.size(sha), 14, 'stored');
    assert.deepEqual((await collectGarbage(store)).removed, [], 'claimed: left alone');
    await store.meta.insertImage(image, []);
  });
  assert.deepEqual((await collectGarbage(store)).removed, [], 'recorded and used');
  assert.equal(await store.blobs.size(sha), 14);
});

test('a writer reusing a blob that is being collected waits, then puts its bytes back', async () => {
  const store = memoryStore();
  const writer = await stage(store, 'shared bytes');
  const sha = await writer.digest();
  assert.equal(await store.meta.beginCollect(sha, new Date().toISOString(), new Date().toISOString()), true);
  const image = imageRecord({ fingerprint: sha, metadata: { sha256: sha, size: 12, format: { kind: 'tarball', compression: 'none' } } });
  const committing = commitBlobs(store, [writer], () => store.meta.insertImage(image, []));
  await new Promise((resolve) => setTimeout(resolve, 120));
  assert.equal(await store.meta.getImage(sha), undefined, 'still waiting for the collector');
  await store.blobs.delete(sha);
  await store.meta.finishCollect(sha);
  await committing;
  assert.equal(await store.blobs.size(sha), 12);
  assert.equal((await store.meta.getBlob(sha))?.referenced, true);
});

test('an owner other than an image keeps its files through collection; released after an index named them, they wait for the grace period', async () => {
  const store = memoryStore();
  const writer = await stage(store, 'a registry layer');
  const sha = await writer.digest();
  const owner = { kind: 'oci-manifest', id: 'library/app@sha256:1' };
  await commitBlobs(store, [writer], () => store.meta.holdBlobs(owner, [{ sha256: sha, size: 16, format: { kind: 'tarball', compression: 'gzip' } }]));
  assert.deepEqual((await collectGarbage(store)).removed, [], 'held');
  assert.equal(await store.blobs.size(sha), 16);
  await store.meta.releaseBlobs(owner, { published: true });
  assert.deepEqual((await collectGarbage(store)).removed, [], 'in its grace period');
  assert.deepEqual((await collectGarbage(store, { now: new Date(Date.now() + 3601_000) })).removed, [sha]);
  assert.equal(await store.blobs.size(sha), undefined);
});
