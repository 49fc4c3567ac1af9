/**
 * The BlobLedger contract (src/meta/store.ts), run against every metadata driver: blob records,
 * the lazy cache, and the claim/collect protocol of src/core/collect.ts, between two handles
 * that behave as two processes, including one that dies half-way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { abandonedCollectionMs, type MetaStore } from '../../src/meta/store.ts';
import { isAppError } from '../../src/errors.ts';
import { alias, delta, fromNow, metaDrivers, rejectsWith, sha, splitImage } from './meta-drivers.ts';

const fp = (n: number) => sha('c', n);
const hour = 3600_000;
/** A grace period of an hour, as `collectGarbage` computes it. */
const cutoff = () => fromNow(-hour);
const now = () => new Date().toISOString();
const claimTtl = () => fromNow(hour);
/** A cutoff after the grace period of everything deleted so far: for tests about claims and collections, not grace. */
const graceOver = () => fromNow(1000);

/** What collectGarbage does with one candidate, minus the bytes. */
async function collect(store: MetaStore, sha256: string, at = now()): Promise<boolean> {
  if (!(await store.beginCollect(sha256, cutoff(), at))) return false;
  await store.finishCollect(sha256);
  return true;
}

for (const driver of metaDrivers) {
  test(`${driver.name} blobs: records say size, format, source, use and unpublication`, async (t) => {
    const { store } = await driver.open(t);
    const image = splitImage(fp(1), { deltas: [delta(sha('d', 1), 'v0')] });
    await store.insertImage(image, [], { [image.rootfs!.sha256]: { url: 'https://up.example/r', certificate: 'PEM' }, [sha('9')]: { url: 'x', certificate: '' } });
    assert.deepEqual(await store.getBlob(image.metadata.sha256), { ...image.metadata, unpublishedAt: null, referenced: true, sourceUrl: null, sourceCertificate: null });
    assert.deepEqual(await store.getBlob(image.rootfs!.sha256), { ...image.rootfs!, unpublishedAt: null, referenced: true, sourceUrl: 'https://up.example/r', sourceCertificate: 'PEM' });
    assert.deepEqual(await store.getBlob(sha('d', 1)), { sha256: sha('d', 1), size: 10, format: { kind: 'vcdiff' }, unpublishedAt: null, referenced: true, sourceUrl: null, sourceCertificate: null });
    // A source for a blob the image does not have records nothing.
    assert.equal(await store.getBlob(sha('9')), undefined);
  });

  test(`${driver.name} blobs: collectable are the unused ones past their grace period (a deleted image's, public or private), in order`, async (t) => {
    const { store } = await driver.open(t);
    for (const n of [3, 1, 2, 4]) await store.insertImage(splitImage(fp(n), { public: n !== 2 }), []);
    await store.claimBlobs('c', [sha('e', 4), sha('f', 4)], claimTtl());
    await store.deleteImages([fp(4)]);
    await store.releaseClaim('c');
    assert.deepEqual(await store.collectableBlobs(cutoff()), []);
    // Both wait for the grace period (a private view or a secret may have named the private one);
    // only the public one's are unpublished, which is what serves them to anyone meanwhile.
    await store.deleteImages([fp(2)]);
    await store.deleteImages([fp(3)]);
    assert.deepEqual(await store.collectableBlobs(cutoff()), []);
    assert.equal((await store.getBlob(sha('f', 2)))!.unpublishedAt, null);
    assert.notEqual((await store.getBlob(sha('f', 3)))!.unpublishedAt, null);
    assert.deepEqual(await store.collectableBlobs(fromNow(1000)), [sha('e', 2), sha('e', 3), sha('e', 4), sha('f', 2), sha('f', 3), sha('f', 4)]);
    assert.equal(await store.beginCollect(sha('f', 3), cutoff(), now()), false);
    assert.equal(await store.beginCollect(sha('f', 2), cutoff(), now()), false);
    assert.equal(await store.beginCollect(sha('f', 1), fromNow(1000), now()), false, 'used');
    assert.equal(await store.beginCollect(sha('f', 2), fromNow(1000), now()), true);
    await store.finishCollect(sha('f', 2));
    assert.equal(await store.getBlob(sha('f', 2)), undefined);
    assert.deepEqual(await store.collectableBlobs(fromNow(1000)), [sha('e', 2), sha('e', 3), sha('e', 4), sha('f', 3), sha('f', 4)]);
  });

  test(`${driver.name} blobs: the deltas of a deleted image wait for the grace period like its other files; an image made private first is never unpublished`, async (t) => {
    const { store } = await driver.open(t);
    await store.insertImage(splitImage(fp(1), { deltas: [delta(sha('d', 1), 'v0')] }), []);
    await store.insertImage(splitImage(fp(2)), []);
    await store.addDeltas(fp(2), [delta(sha('d', 2), 'v1')]);
    await store.deleteImages([fp(1)]);
    const d = sha('d', 1);
    assert.ok(!(await store.collectableBlobs(cutoff())).includes(d), d);
    assert.equal(await store.beginCollect(d, cutoff(), now()), false, d);
    // Once the grace period is over, they go.
    assert.ok((await store.collectableBlobs(fromNow(1000))).includes(d), d);
    assert.equal(await store.beginCollect(d, fromNow(1000), now()), true, d);
    // Made private first, then deleted: out of every public index since it was made private, so
    // never unpublished (nothing serves it to anyone), but kept through the grace period.
    await store.updateImage({ ...(await store.getImage(fp(2)))!, public: false });
    await store.deleteImages([fp(2)]);
    assert.equal((await store.getBlob(sha('d', 2)))!.unpublishedAt, null);
    assert.ok(!(await store.collectableBlobs(cutoff())).includes(sha('d', 2)));
    assert.equal(await store.beginCollect(sha('d', 2), fromNow(1000), now()), true);
  });

  test(`${driver.name} blobs: lazy files idle since a moment are listed until touched`, async (t) => {
    const { store } = await driver.open(t);
    const image = splitImage(fp(1), { uploadedAt: '2026-11-22T08:00:00.000Z' });
    await store.insertImage(image, [], { [image.rootfs!.sha256]: { url: 'u', certificate: '' }, [image.metadata.sha256]: { url: 'u', certificate: '' } });
    await store.insertImage(splitImage(fp(2), { uploadedAt: '2026-11-22T08:00:00.000Z' }), []);
    // Never downloaded: idle since the record was made.
    assert.deepEqual(await store.idleLazyBlobs('2026-11-22T08:00:00.000Z'), []);
    assert.deepEqual(await store.idleLazyBlobs('2026-11-23T00:00:00.000Z'), [sha('e', 1), sha('f', 1)]);
    await store.touchBlob(sha('f', 1), '2026-11-24T00:00:00.000Z');
    await store.touchBlob(sha('0'), '2026-11-24T00:00:00.000Z'); // unknown: nothing
    assert.deepEqual(await store.idleLazyBlobs('2026-11-23T00:00:00.000Z'), [sha('e', 1)]);
    assert.deepEqual(await store.idleLazyBlobs('2026-11-25T00:00:00.000Z'), [sha('e', 1), sha('f', 1)]);
    // The record stays, so the file can be fetched again.
    assert.equal((await store.getBlob(sha('f', 1)))!.sourceUrl, 'u');
  });

  test(`${driver.name} blobs: a claimed blob cannot be collected; a blob being collected cannot be claimed`, async (t) => {
    const { store } = await driver.open(t);
    const [x, y, z] = [sha('a', 1), sha('a', 2), sha('a', 3)];
    // Blobs with no record at all (a file whose writer died before recording it) take part too.
    await store.claimBlobs('import-1', [x], claimTtl());
    await store.claimBlobs('import-1', [x], claimTtl()); // again: harmless
    assert.equal(await store.beginCollect(x, cutoff(), now()), false);
    assert.equal(await store.beginCollect(y, cutoff(), now()), true);
    assert.equal(await store.beginCollect(y, cutoff(), now()), false, 'already being collected');

    await assert.rejects(store.claimBlobs('import-2', [z, y], claimTtl()), (err: unknown) => isAppError(err, 'busy'));
    assert.equal(await store.beginCollect(z, cutoff(), now()), true, 'a refused claim holds nothing');
    await store.finishCollect(z);

    await store.finishCollect(y);
    await store.finishCollect(y); // idempotent
    await store.claimBlobs('import-2', [z, y], claimTtl());
    assert.equal(await store.beginCollect(y, cutoff(), now()), false);

    // Two claims on one blob: it is free only once both are released.
    await store.claimBlobs('import-3', [y], claimTtl());
    await store.releaseClaim('import-2');
    assert.equal(await store.beginCollect(y, cutoff(), now()), false);
    assert.equal(await store.beginCollect(z, cutoff(), now()), true);
    await store.finishCollect(z);
    await store.releaseClaim('import-3');
    await store.releaseClaim('import-3'); // idempotent
    await store.releaseClaim('never-made');
    assert.equal(await collect(store, y), true);

    await store.releaseClaim('import-1');
    assert.equal(await collect(store, x), true);
  });

  test(`${driver.name} blobs: any owner holds blobs against collection, as images do; released, published ones wait for the grace period`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const blob = (n: number) => ({ sha256: sha('b', n), size: 10 * n, format: { kind: 'tarball' as const, compression: 'gzip' as const } });
    const manifest = { kind: 'oci-manifest', id: 'library/debian@sha256:1' };
    const index = { kind: 'oci-manifest', id: 'library/debian@sha256:0' };
    const built = { kind: 'build', id: 'b-1' };
    await store.holdBlobs(manifest, [blob(1), blob(2)]);
    await other.holdBlobs(index, [blob(2)]);
    await store.holdBlobs(manifest, [blob(1)]); // again: harmless
    await store.insertImage(splitImage(fp(1)), []);
    await store.holdBlobs(built, [{ ...splitImage(fp(1)).rootfs! }]);
    // Recorded as blobs, used, owned by whom they say, and never collectable while held.
    assert.deepEqual(await other.getBlob(sha('b', 1)), { ...blob(1), unpublishedAt: null, referenced: true, sourceUrl: null, sourceCertificate: null });
    assert.deepEqual(await other.blobOwners(sha('b', 2)), [index, manifest]);
    assert.deepEqual(await store.blobOwners(sha('f', 1)), [built]);
    assert.deepEqual(await store.blobOwners(sha('b', 9)), []);
    assert.deepEqual(await store.collectableBlobs(fromNow(hour)), []);
    assert.equal(await collect(other, sha('b', 1), fromNow(hour)), false);

    // The image goes; the owner still holds its rootfs (and only that).
    await store.deleteImages([fp(1)]);
    assert.deepEqual(await store.collectableBlobs(fromNow(hour)), [sha('e', 1)]);
    await other.releaseBlobs(built);
    assert.deepEqual(await store.collectableBlobs(fromNow(hour)), [sha('e', 1), sha('f', 1)]);

    // Released in part, unpublished: collectable at once. Released whole, published: after the grace period.
    await other.releaseBlobs(manifest, { sha256s: [sha('b', 2)] });
    assert.deepEqual(await store.blobOwners(sha('b', 2)), [index], 'the other owner still holds it');
    await store.releaseBlobs(index, { published: true });
    await store.releaseBlobs(index, { published: true }); // idempotent
    assert.ok(!(await store.collectableBlobs(cutoff())).includes(sha('b', 2)), 'an index named it: it waits for the grace period');
    assert.ok((await store.collectableBlobs(fromNow(1000))).includes(sha('b', 2)));
    assert.equal(await collect(other, sha('b', 1)), false, 'still held by the manifest');
    await store.releaseBlobs(manifest);
    assert.equal(await collect(other, sha('b', 1)), true);
    assert.equal(await store.getBlob(sha('b', 1)), undefined);

    // A blob being collected cannot be held (busy), holding none of those asked.
    await store.holdBlobs(manifest, [blob(3)]);
    await store.releaseBlobs(manifest);
    assert.equal(await other.beginCollect(sha('b', 3), cutoff(), now()), true);
    await assert.rejects(store.holdBlobs(manifest, [blob(4), blob(3)]), (err: unknown) => isAppError(err, 'busy'));
    assert.deepEqual(await store.blobOwners(sha('b', 4)), [], 'a refused hold holds nothing');
    await other.finishCollect(sha('b', 3));
    await store.holdBlobs(manifest, [blob(4), blob(3)]);
    assert.deepEqual(await store.blobOwners(sha('b', 3)), [manifest]);
  });

  test(`${driver.name} blobs: the contract holds between two processes`, async (t) => {
    const { store: importer, peer } = await driver.open(t);
    const collector = peer();
    const image = splitImage(fp(1));
    const [meta, rootfs] = [image.metadata.sha256, image.rootfs!.sha256];
    // An earlier image left these files unused: candidates for the collector.
    await importer.insertImage(splitImage(fp(2), { public: false, metadata: image.metadata, rootfs: image.rootfs }), []);
    await importer.deleteImages([fp(2)]);
    assert.deepEqual(await collector.collectableBlobs(graceOver()), [meta, rootfs]);

    // The importer claims first: the collector must leave both alone until the record is in.
    await importer.claimBlobs('import', [meta, rootfs], claimTtl());
    assert.equal(await collector.beginCollect(meta, graceOver(), now()), false);
    await importer.insertImage(image, [alias('new', fp(1))]);
    await importer.releaseClaim('import');
    assert.equal(await collector.beginCollect(rootfs, graceOver(), now()), false, 'used now');
    assert.deepEqual(await collector.collectableBlobs(graceOver()), []);

    // The collector first: the importer waits (busy) until the collection is over.
    await importer.insertImage(splitImage(fp(3), { public: false }), []);
    await importer.deleteImages([fp(3)]);
    assert.equal(await collector.beginCollect(sha('f', 3), graceOver(), now()), true);
    await rejectsWith(importer.claimBlobs('import', [sha('f', 3)], claimTtl()), 'busy');
    await collector.finishCollect(sha('f', 3));
    assert.equal(await importer.getBlob(sha('f', 3)), undefined);
    await importer.claimBlobs('import', [sha('f', 3)], claimTtl());
    assert.equal(await collector.beginCollect(sha('f', 3), graceOver(), now()), false);
  });

  test(`${driver.name} blobs: a claim never released by a killed process expires`, async (t) => {
    const { store, peer } = await driver.open(t);
    const doomed = peer();
    const x = sha('a', 1);
    await doomed.claimBlobs('killed-import', [x], claimTtl());
    await doomed.close(); // killed: it never releases
    assert.equal(await store.beginCollect(x, cutoff(), now()), false);
    assert.equal(await store.beginCollect(x, cutoff(), fromNow(hour - 1000)), false);
    assert.equal(await store.beginCollect(x, cutoff(), fromNow(hour)), true, 'expired at expiresAt');
    await store.finishCollect(x);
  });

  test(`${driver.name} blobs: a collection begun and never finished is taken as abandoned after a while`, async (t) => {
    const { store, peer } = await driver.open(t);
    const collector = peer();
    const [x, y] = [sha('a', 1), sha('a', 2)];
    await store.insertImage(splitImage(fp(1), { public: false }), []);
    await store.deleteImages([fp(1)]);
    const recorded = sha('f', 1);

    // Killed right after deciding, before deleting anything.
    const fresh = now();
    assert.equal(await collector.beginCollect(x, graceOver(), fresh), true);
    await collector.close();
    await rejectsWith(store.claimBlobs('import', [x], claimTtl()), 'busy');
    assert.equal(await store.beginCollect(x, graceOver(), now()), false);
    // Another collector takes it over once the mark is old enough.
    const later = new Date(Date.parse(fresh) + abandonedCollectionMs + 1000).toISOString();
    assert.equal(await store.beginCollect(x, graceOver(), later), true);
    await store.finishCollect(x);

    // A writer may claim a blob whose collection was abandoned; the old collector, if it was only
    // slow, does not forget a record that is used again by then.
    const slow = peer();
    assert.equal(await slow.beginCollect(recorded, graceOver(), fromNow(-abandonedCollectionMs - 1000)), true);
    assert.equal(await slow.beginCollect(y, graceOver(), fromNow(-abandonedCollectionMs - 1000)), true);
    await store.claimBlobs('import', [recorded, y], claimTtl());
    assert.equal(await slow.beginCollect(recorded, graceOver(), now()), false, 'claimed');
    await store.insertImage(splitImage(fp(2), { rootfs: { sha256: recorded, size: 2000, format: { kind: 'squashfs' } } }), []);
    await store.releaseClaim('import');
    await slow.finishCollect(recorded);
    assert.equal((await store.getBlob(recorded))?.referenced, true);
    assert.equal((await store.getImage(fp(2)))!.rootfs!.sha256, recorded);
  });

  test(`${driver.name} blobs: random interleavings of two processes never let a blob be claimed and collected at once`, async (t) => {
    const { store, peer } = await driver.open(t);
    const handles = [store, peer()];
    const blobs = [1, 2, 3, 4].map((n) => sha('a', n));
    // The model: who holds what, and what is being collected.
    const claims = new Map<string, Set<string>>();
    const collecting = new Set<string>();
    // mulberry32: a seeded sequence, so a failure replays.
    let seed = 42;
    const random = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
      return ((x ^ (x >>> 14)) >>> 0) % n;
    };
    for (let step = 0; step < 400; step++) {
      const handle = handles[random(2)]!;
      const claim = `claim-${random(3)}`;
      const some = blobs.filter(() => random(2) === 0);
      const one = blobs[random(blobs.length)]!;
      const held = () => [...claims.values()].some((s) => s.has(one));
      switch (random(4)) {
        case 0: {
          const busy = some.some((b) => collecting.has(b));
          const outcome = await handle.claimBlobs(claim, some, claimTtl()).then(
            () => 'claimed',
            (err: unknown) => (isAppError(err, 'busy') ? 'busy' : Promise.reject(err)),
          );
          assert.equal(outcome, busy ? 'busy' : 'claimed', `step ${step}: claim ${some}`);
          if (!busy) claims.set(claim, new Set([...(claims.get(claim) ?? []), ...some]));
          break;
        }
        case 1:
          await handle.releaseClaim(claim);
          claims.delete(claim);
          break;
        case 2: {
          const expected = !held() && !collecting.has(one);
          assert.equal(await handle.beginCollect(one, cutoff(), now()), expected, `step ${step}: collect ${one}`);
          if (expected) collecting.add(one);
          break;
        }
        default:
          await handle.finishCollect(one);
          collecting.delete(one);
      }
    }
  });
}

test("postgres blobs: one clock, the database server's: a deletion by a host whose clock runs an hour behind still starts the whole grace period", async (t) => {
  const driver = metaDrivers.find((d) => d.name === 'postgres')!;
  const { store: deleter, peer } = await driver.open(t);
  const collector = peer();
  await deleter.insertImage(splitImage(fp(1)), []);
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() - hour });
  try {
    assert.ok(Math.abs((await deleter.clock()).getTime() - (Date.now() + hour)) < 60_000, "the store's clock is the server's, not the host's");
    await deleter.deleteImages([fp(1)]);
  } finally {
    t.mock.timers.reset();
  }
  // The collector's host keeps good time: the grace period runs from the deletion, on the store's clock.
  const cutoff = new Date((await collector.clock()).getTime() - hour).toISOString();
  assert.deepEqual(await collector.collectableBlobs(cutoff), [], 'nothing collectable before the grace period is over');
  assert.deepEqual(await collector.collectableBlobs(fromNow(1000)), [sha('e', 1), sha('f', 1)]);
});
