/**
 * The OciStore contract (src/meta/store.ts), run against every metadata driver: the registry's
 * repositories, their blob links, manifests and tags, between handles that behave as processes.
 * What matters most is that the registry's holds are blob owners written in the same write as the
 * change they belong to, so that collection (`beginCollect`) never takes a blob a link or a
 * manifest holds, and takes it once nothing does. The races at the end push manifests while
 * another process moves the tag or unlinks and collects their blobs; the last test shows that a
 * driver that checks the links, yields and then writes fails them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ociOwners, type MetaStore, type OciManifest } from '../../src/meta/store.ts';
import { MemoryMetaStore } from '../../src/meta/memory.ts';
import type { BlobRef } from '../../src/domain/image.ts';
import { OciError, manifestMediaTypes, type OciErrorCode } from '../../src/domain/oci.ts';
import { isAppError } from '../../src/errors.ts';
import { fromNow, metaDrivers, rejectsWith, sha, type OpenedMeta } from './meta-drivers.ts';

const repo = 'library/debian';
const hour = 3600_000;
const now = () => new Date().toISOString();
/** A blob of the registry: `b…` for layers and configs. */
const blob = (n: number, prefix = 'b'): BlobRef => ({ sha256: sha(prefix, n), size: 100 + n, format: { kind: 'oci' } });
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** An image manifest `a…` naming `blobs` (config first, then layers). */
function manifest(repository: string, n: number, blobs: string[], extra: Partial<OciManifest> = {}): OciManifest {
  return {
    repository,
    sha256: sha('a', n),
    mediaType: manifestMediaTypes.ociManifest,
    size: 500 + n,
    blobs,
    manifests: [],
    subject: null,
    artifactType: null,
    annotations: {},
    // The store's clock decides it: whatever is handed in is not kept.
    createdAt: '2000-01-01T00:00:00.000Z',
    ...extra,
  };
}

/** An index `9…` listing `manifests`. */
const index = (repository: string, n: number, manifests: string[]): OciManifest =>
  manifest(repository, 0, [], { sha256: sha('9', n), mediaType: manifestMediaTypes.ociIndex, manifests, annotations: { 'org.opencontainers.image.ref.name': `index-${n}` } });

/** The blob a manifest's bytes are stored as. */
const bytesOf = (m: OciManifest): BlobRef => ({ sha256: m.sha256, size: m.size, format: { kind: 'oci' } });

/** What collectGarbage does with one candidate, minus the bytes; the cutoff is in the past: grace periods do not come into it. */
async function collect(store: MetaStore, sha256: string): Promise<boolean> {
  if (!(await store.beginCollect(sha256, fromNow(-hour), now()))) return false;
  await store.finishCollect(sha256);
  return true;
}

/** Asserts that `promise` fails with an OciError of `code` whose message says `says`. */
async function rejectsOci(promise: Promise<unknown>, code: OciErrorCode, says?: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof OciError, `expected an OciError ${code}, got ${String(err)}`);
    assert.equal(err.ociCode, code, err.message);
    if (says !== undefined) assert.ok(err.message.includes(says), `"${err.message}" should say ${says}`);
    return true;
  });
}

/** The manifest as stored (its createdAt the store's), checked to be `m` whole. */
async function stored(store: MetaStore, m: OciManifest): Promise<OciManifest> {
  const got = await store.getOciManifest(m.repository, { sha256: m.sha256 });
  assert.ok(got, `manifest ${m.sha256.slice(0, 8)} of ${m.repository} is recorded`);
  assert.deepEqual(got, { ...m, createdAt: got.createdAt });
  return got;
}

for (const driver of metaDrivers) {
  test(`${driver.name} oci: a cached manifest names blobs not there yet, holds only its bytes; its blobs are held as they are linked`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const cached = manifest('hub/library/alpine', 7, [blob(70).sha256, blob(71).sha256]);
    await store.putOciManifest(cached, bytesOf(cached), 'latest', { cached: true });
    assert.equal((await other.getOciManifest('hub/library/alpine', { tag: 'latest' }))?.sha256, cached.sha256);
    assert.equal(await collect(other, cached.sha256), false, 'its bytes are held');
    assert.equal(await other.ociBlobLinked('hub/library/alpine', blob(70).sha256), false, 'not in the repository until it arrives');
    await other.linkOciBlob('hub/library/alpine', blob(70));
    assert.equal(await store.ociBlobLinked('hub/library/alpine', blob(70).sha256), true);
    assert.equal(await collect(store, blob(70).sha256), false, 'a blob that arrived is held by its link');
    await rejectsOci(store.putOciManifest(manifest('hub/library/alpine', 8, [blob(72).sha256]), bytesOf(manifest('hub/library/alpine', 8, [])), 'x'), 'MANIFEST_BLOB_UNKNOWN');
  });

  test(`${driver.name} oci: ownedBlobs lists what links and manifests hold, once each, until they let go`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const [x, y] = [blob(80), blob(81)];
    await store.linkOciBlob('a', x);
    await store.linkOciBlob('b', x);
    await store.linkOciBlob('a', y);
    const m = manifest('a', 80, [x.sha256, y.sha256]);
    await store.putOciManifest(m, bytesOf(m), 'v1');
    const owned = async () => (await other.ownedBlobs()).map((b) => [b.sha256, b.size]);
    assert.deepEqual(await owned(), [[m.sha256, m.size], [x.sha256, x.size], [y.sha256, y.size]].sort(([p], [q]) => (String(p) < String(q) ? -1 : 1)));
    await store.deleteOciManifest('a', m.sha256);
    await store.unlinkOciBlob('a', y.sha256);
    assert.deepEqual(await owned(), [[x.sha256, x.size]], 'x is still linked to a and b');
  });

  test(`${driver.name} oci: a link is per repository and holds its blob against collection until it is unlinked`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const x = blob(1);
    assert.deepEqual(await store.ociRepositories(), []);
    await store.linkOciBlob('a', x);
    await other.linkOciBlob('a', x); // again: harmless
    assert.equal(await other.ociBlobLinked('a', x.sha256), true);
    assert.equal(await other.ociBlobLinked('b', x.sha256), false, 'linked to a, not to b');
    assert.equal(await other.ociBlobLinked('a', sha('b', 2)), false);
    assert.deepEqual(await other.getBlob(x.sha256), { ...x, unpublishedAt: null, referenced: true, sourceUrl: null, sourceCertificate: null });
    assert.deepEqual(await other.blobOwners(x.sha256), [ociOwners.blob('a', x.sha256)]);
    assert.deepEqual(await store.collectableBlobs(fromNow(hour)), []);
    assert.equal(await collect(other, x.sha256), false, 'held by its link');

    await other.linkOciBlob('b', x);
    assert.equal(await store.unlinkOciBlob('a', x.sha256), true);
    assert.equal(await other.unlinkOciBlob('a', x.sha256), false, 'unlinked once');
    assert.equal(await store.unlinkOciBlob('nowhere', x.sha256), false);
    assert.equal(await other.ociBlobLinked('a', x.sha256), false);
    assert.equal(await other.ociBlobLinked('b', x.sha256), true);
    assert.equal(await collect(other, x.sha256), false, "still held by b's link");
    assert.equal(await other.unlinkOciBlob('b', x.sha256), true);
    // Nothing holds it and no index ever named it: collectable at once, with no grace period.
    assert.equal((await store.getBlob(x.sha256))!.unpublishedAt, null, 'unlinking unpublishes nothing');
    assert.equal(await collect(other, x.sha256), true);
    assert.equal(await store.getBlob(x.sha256), undefined);
    assert.deepEqual(await store.ociRepositories(), []);

    // A blob being collected cannot be linked (busy), and the refused link links nothing.
    const y = blob(2);
    assert.equal(await other.beginCollect(y.sha256, fromNow(-hour), now()), true);
    await rejectsWith(store.linkOciBlob('a', y), 'busy');
    assert.equal(await store.ociBlobLinked('a', y.sha256), false);
    assert.deepEqual(await store.blobOwners(y.sha256), []);
    assert.deepEqual(await store.ociRepositories(), []);
    await other.finishCollect(y.sha256);
    await store.linkOciBlob('a', y);
    assert.equal(await collect(other, y.sha256), false);
  });

  test(`${driver.name} oci: a manifest naming a blob not in its repository is refused whole; a pushed one holds its blobs, unlinked or not`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const [config, layer, elsewhere] = [blob(1), blob(2), blob(3)];
    await store.linkOciBlob(repo, config);
    await store.linkOciBlob(repo, layer);
    await store.linkOciBlob('library/alpine', elsewhere);
    const m = manifest(repo, 1, [config.sha256, layer.sha256, elsewhere.sha256], { annotations: { 'org.example': 'x' }, artifactType: 'application/vnd.example' });

    await rejectsOci(other.putOciManifest(m, bytesOf(m), 'latest'), 'MANIFEST_BLOB_UNKNOWN', `blob sha256:${elsewhere.sha256} is not in ${repo}`);
    // Nothing kept: no manifest, no tag, no record of its bytes, no hold.
    assert.equal(await store.getOciManifest(repo, { sha256: m.sha256 }), undefined);
    assert.equal(await store.getOciManifest(repo, { tag: 'latest' }), undefined);
    assert.deepEqual(await store.ociTags(repo), []);
    assert.equal(await store.getBlob(m.sha256), undefined);
    assert.deepEqual(await store.blobOwners(config.sha256), [ociOwners.blob(repo, config.sha256)]);
    assert.equal(await store.ociBlobLinked(repo, m.sha256), false);

    await store.linkOciBlob(repo, elsewhere);
    const before = Date.now();
    await other.putOciManifest(m, bytesOf(m), 'latest');
    const got = await stored(store, m);
    assert.ok(Date.parse(got.createdAt) >= before - 1000 && Date.parse(got.createdAt) <= Date.now() + 1000, `createdAt is the store's clock: ${got.createdAt}`);
    assert.deepEqual(await store.getOciManifest(repo, { tag: 'latest' }), got);
    assert.equal(await store.getOciManifest('library/alpine', { sha256: m.sha256 }), undefined, 'a manifest is per repository');
    assert.deepEqual((await store.getBlob(m.sha256))!.format, { kind: 'oci' }, 'its bytes are recorded as a blob');
    // It holds its own bytes and every blob it names; its bytes are readable as a blob of the repository.
    const held = ociOwners.manifest(repo, m.sha256);
    assert.deepEqual(await store.blobOwners(m.sha256), [held]);
    assert.deepEqual(await store.blobOwners(config.sha256), [ociOwners.blob(repo, config.sha256), held]);
    assert.equal(await store.ociBlobLinked(repo, m.sha256), true);
    assert.equal(await store.ociBlobLinked('library/alpine', m.sha256), false);

    // Unlinked, its blobs stay held by the manifest, and in the repository.
    for (const b of [config, layer, elsewhere]) assert.equal(await store.unlinkOciBlob(repo, b.sha256), true);
    assert.equal(await store.ociBlobLinked(repo, layer.sha256), true, 'held there by its manifest');
    assert.equal(await store.ociBlobLinked('library/alpine', layer.sha256), false);
    for (const b of [m.sha256, config.sha256, layer.sha256]) assert.equal(await collect(other, b), false, `${b.slice(0, 8)} is held by the manifest`);
    assert.deepEqual(await store.collectableBlobs(fromNow(hour)), []);
    // So a manifest naming them may be pushed without uploading them again.
    const again = manifest(repo, 2, [config.sha256, layer.sha256]);
    await store.putOciManifest(again, bytesOf(again));
    await stored(other, again);

    // Records are values: neither the one handed in nor the one handed out is kept by reference.
    got.blobs.push('changed');
    m.annotations['org.example'] = 'changed';
    assert.deepEqual((await store.getOciManifest(repo, { sha256: m.sha256 }))!.blobs, [config.sha256, layer.sha256, elsewhere.sha256]);
    assert.deepEqual((await store.getOciManifest(repo, { sha256: m.sha256 }))!.annotations, { 'org.example': 'x' });
  });

  test(`${driver.name} oci: tags move between manifests, listed in code point order; a manifest pushed again keeps its record`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const config = blob(1);
    await store.linkOciBlob(repo, config);
    const [m1, m2] = [manifest(repo, 1, [config.sha256], { annotations: { first: 'yes' } }), manifest(repo, 2, [config.sha256])];
    await store.putOciManifest(m1, bytesOf(m1), 'latest');
    await other.putOciManifest(m2, bytesOf(m2), 'latest');
    assert.equal((await store.getOciManifest(repo, { tag: 'latest' }))!.sha256, m2.sha256, 'the tag moved');
    const first = await stored(store, m1);

    await new Promise((resolve) => setTimeout(resolve, 5));
    // Pushed again, with another tag (and a record that differs): the first record stays.
    await other.putOciManifest({ ...m1, annotations: { first: 'no' }, createdAt: now() }, bytesOf(m1), 'v1');
    assert.deepEqual(await store.getOciManifest(repo, { sha256: m1.sha256 }), first, 'createdAt and the rest kept');
    assert.deepEqual(await store.getOciManifest(repo, { tag: 'v1' }), first);
    for (const tag of ['_x', 'V2', '1.0']) await store.putOciManifest(m1, bytesOf(m1), tag);
    await store.putOciManifest(m2, bytesOf(m2)); // no tag: none moves
    assert.deepEqual(await other.ociTags(repo), ['1.0', 'V2', '_x', 'latest', 'v1']);
    assert.deepEqual(await other.ociTagTargets(repo), [
      { tag: '1.0', sha256: m1.sha256 },
      { tag: 'V2', sha256: m1.sha256 },
      { tag: '_x', sha256: m1.sha256 },
      { tag: 'latest', sha256: m2.sha256 },
      { tag: 'v1', sha256: m1.sha256 },
    ]);
    assert.deepEqual(await other.ociTags('library/alpine'), []);

    await other.deleteOciTag(repo, 'latest');
    assert.equal(await store.getOciManifest(repo, { tag: 'latest' }), undefined);
    await stored(store, m2); // the manifest stays
    await rejectsOci(store.deleteOciTag(repo, 'latest'), 'MANIFEST_UNKNOWN', 'latest');
    await rejectsOci(store.deleteOciTag('library/alpine', 'v1'), 'MANIFEST_UNKNOWN');
    assert.deepEqual(await store.ociTags(repo), ['1.0', 'V2', '_x', 'v1']);
  });

  test(`${driver.name} oci: an index needs its children in its repository, and a child an index lists cannot be deleted`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const config = blob(1);
    for (const r of ['a', 'b']) await store.linkOciBlob(r, config);
    const [m1, m2] = [manifest('a', 1, [config.sha256]), manifest('a', 2, [config.sha256])];
    await store.putOciManifest(m1, bytesOf(m1));
    await store.putOciManifest({ ...m2, repository: 'b' }, bytesOf(m2));
    const list = index('a', 1, [m1.sha256, m2.sha256]);
    await rejectsOci(other.putOciManifest(list, bytesOf(list), 'latest'), 'MANIFEST_BLOB_UNKNOWN', `manifest sha256:${m2.sha256} is not in a`);
    assert.equal(await store.getOciManifest('a', { tag: 'latest' }), undefined);
    assert.deepEqual(await store.blobOwners(list.sha256), []);

    await other.putOciManifest(m2, bytesOf(m2));
    await other.putOciManifest(list, bytesOf(list), 'latest');
    await stored(store, list);
    // The index holds its own bytes only: its children hold theirs.
    assert.deepEqual(await store.blobOwners(m1.sha256), [ociOwners.manifest('a', m1.sha256)]);
    assert.deepEqual(await store.blobOwners(list.sha256), [ociOwners.manifest('a', list.sha256)]);

    await rejectsWith(store.deleteOciManifest('a', m1.sha256), 'conflict');
    await assert.rejects(store.deleteOciManifest('a', m2.sha256), (err: unknown) => isAppError(err, 'conflict') && err.message.includes(list.sha256));
    await stored(store, m1);
    // The same manifest in another repository is another record, which no index there lists.
    await other.deleteOciManifest('b', m2.sha256);
    await rejectsOci(other.deleteOciManifest('b', m1.sha256), 'MANIFEST_UNKNOWN', m1.sha256);
    // The index first, then its children.
    await other.deleteOciManifest('a', list.sha256);
    await store.deleteOciManifest('a', m1.sha256);
    assert.equal(await other.getOciManifest('a', { sha256: m1.sha256 }), undefined);
  });

  test(`${driver.name} oci: deleting a manifest deletes its tags and releases its holds; a blob nothing holds is then collectable`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const [config, layer] = [blob(1), blob(2)];
    await store.linkOciBlob(repo, config);
    await store.linkOciBlob(repo, layer);
    const [m1, m2] = [manifest(repo, 1, [config.sha256, layer.sha256]), manifest(repo, 2, [config.sha256])];
    await store.putOciManifest(m1, bytesOf(m1), 'latest');
    await store.putOciManifest(m1, bytesOf(m1), 'stable');
    await store.putOciManifest(m2, bytesOf(m2), 'other');
    await store.unlinkOciBlob(repo, config.sha256);
    await store.unlinkOciBlob(repo, layer.sha256);

    await other.deleteOciManifest(repo, m1.sha256);
    assert.equal(await store.getOciManifest(repo, { sha256: m1.sha256 }), undefined);
    assert.equal(await store.getOciManifest(repo, { tag: 'latest' }), undefined);
    assert.deepEqual(await store.ociTags(repo), ['other']);
    assert.deepEqual(await store.blobOwners(layer.sha256), []);
    assert.deepEqual(await store.blobOwners(m1.sha256), []);
    assert.deepEqual(await store.blobOwners(config.sha256), [ociOwners.manifest(repo, m2.sha256)], 'the other manifest still holds the config');
    assert.equal(await store.ociBlobLinked(repo, layer.sha256), false);
    // No index named them: not unpublished, no grace period.
    assert.equal((await store.getBlob(layer.sha256))!.unpublishedAt, null);
    assert.deepEqual(await store.collectableBlobs(fromNow(-hour)), [m1.sha256, layer.sha256].sort());
    assert.equal(await collect(other, layer.sha256), true);
    assert.equal(await collect(other, m1.sha256), true);
    assert.equal(await collect(other, config.sha256), false);
    await rejectsOci(store.deleteOciManifest(repo, m1.sha256), 'MANIFEST_UNKNOWN', m1.sha256);

    await store.deleteOciManifest(repo, m2.sha256);
    assert.equal(await collect(other, config.sha256), true);
    assert.deepEqual(await store.ociTags(repo), []);
    assert.deepEqual(await store.ociRepositories(), [], 'a repository holding nothing is gone');
  });

  test(`${driver.name} oci: referrers are the repository's manifests with that subject, by sha256; a subject may come after them`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const config = blob(1);
    for (const r of [repo, 'library/alpine']) await store.linkOciBlob(r, config);
    const subject = manifest(repo, 5, [config.sha256]);
    const signature = (n: number, r = repo, about = subject.sha256) => manifest(r, n, [config.sha256], { subject: about, artifactType: 'application/vnd.example.sig' });
    // Pushed before their subject: the spec allows it.
    await store.putOciManifest(signature(9), bytesOf(signature(9)));
    await other.putOciManifest(signature(2), bytesOf(signature(2)));
    await other.putOciManifest(signature(3, 'library/alpine'), bytesOf(signature(3)));
    await other.putOciManifest(signature(4, repo, sha('a', 7)), bytesOf(signature(4)));
    await store.putOciManifest(subject, bytesOf(subject));
    const referrers = await store.ociReferrers(repo, subject.sha256);
    assert.deepEqual(referrers.map((m) => m.sha256), [sha('a', 2), sha('a', 9)]);
    assert.deepEqual(referrers[0], { ...signature(2), createdAt: referrers[0]!.createdAt });
    assert.deepEqual(await store.ociReferrers(repo, sha('a', 8)), []);
    // Deleting the subject leaves its referrers (their subject need not exist).
    await store.deleteOciManifest(repo, subject.sha256);
    assert.equal((await other.ociReferrers(repo, subject.sha256)).length, 2);
  });

  test(`${driver.name} oci: repositories are those holding a link or a manifest, in code point order`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const x = blob(1);
    for (const r of ['ab', 'a_b', 'a/b', 'a.b', 'a-b']) await store.linkOciBlob(r, x);
    assert.deepEqual(await other.ociRepositories(), ['a-b', 'a.b', 'a/b', 'a_b', 'ab']);
    // Only a manifest left in a/b; a repository whose name starts like another's holds apart from it.
    const m = manifest('a/b', 1, [x.sha256]);
    await other.putOciManifest(m, bytesOf(m));
    for (const r of ['ab', 'a_b', 'a/b', 'a.b']) await store.unlinkOciBlob(r, x.sha256);
    assert.deepEqual(await other.ociRepositories(), ['a-b', 'a/b']);
    assert.equal(await store.ociBlobLinked('a/b', x.sha256), true);
    for (const r of ['a', 'a/', 'a/b/c', 'ab', 'a/bc']) assert.equal(await store.ociBlobLinked(r, x.sha256), false, r);
  });

  test(`${driver.name} oci: the registry's writes do not count as catalogue changes`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const [mine, theirs] = [await store.changeVersion(), await other.changeVersion()];
    const x = blob(1);
    const m = manifest(repo, 1, [x.sha256]);
    await store.linkOciBlob(repo, x);
    await store.putOciManifest(m, bytesOf(m), 'latest');
    await store.deleteOciTag(repo, 'latest');
    await store.unlinkOciBlob(repo, x.sha256);
    await store.deleteOciManifest(repo, m.sha256);
    assert.equal(await store.changeVersion(), mine, "the writer's version stays");
    // SQLite's data_version moves for the other connections on any commit: unavoidable there.
    if (driver.name !== 'sqlite') assert.equal(await other.changeVersion(), theirs, "the other handle's version stays");
  });

  test(`${driver.name} oci: two processes pushing the same tag at once: it ends on one of the two, both recorded whole`, async (t) => {
    await racingTags(await driver.open(t));
  });

  test(`${driver.name} oci: a push racing an unlink and a collection of its blob either fails or keeps the blob held`, async (t) => {
    const { pushed, refused } = await unlinkWhilePushing(await driver.open(t));
    t.diagnostic(`${pushed} pushed, ${refused} refused`);
  });
}

/** Two handles push different manifests under one tag, round after round. */
async function racingTags({ store, peer }: OpenedMeta): Promise<void> {
  const other = peer();
  const config = blob(1);
  await store.linkOciBlob(repo, config);
  for (let round = 0; round < 20; round++) {
    const [a, b] = [manifest(repo, 2 * round + 1, [config.sha256], { annotations: { round: String(round) } }), manifest(repo, 2 * round + 2, [config.sha256])];
    const pushes = [() => store.putOciManifest(a, bytesOf(a), 'race'), () => other.putOciManifest(b, bytesOf(b), 'race')];
    // Either may start first.
    await Promise.all(round % 2 === 0 ? pushes.map((push) => push()) : pushes.reverse().map((push) => push()));
    const target = (await store.getOciManifest(repo, { tag: 'race' }))!.sha256;
    assert.ok(target === a.sha256 || target === b.sha256, `round ${round}: the tag is on one of them`);
    assert.deepEqual(await other.ociTagTargets(repo), [{ tag: 'race', sha256: target }]);
    for (const m of [a, b]) {
      await stored(other, m);
      assert.deepEqual(await store.blobOwners(m.sha256), [ociOwners.manifest(repo, m.sha256)], `round ${round}: ${m.sha256.slice(-2)} holds its bytes`);
    }
  }
  assert.equal((await store.blobOwners(config.sha256)).length, 41, 'the link and the 40 manifests hold the config');
}

/**
 * Round after round, one process pushes a manifest naming blob X while another unlinks X and
 * collects it if it may. Allowed: the push fails (MANIFEST_BLOB_UNKNOWN, nothing kept), or it
 * succeeds and X was not collected and stays held. Never a manifest whose blob is gone.
 */
async function unlinkWhilePushing({ store, peer }: OpenedMeta): Promise<{ pushed: number; refused: number }> {
  const other = peer();
  let pushed = 0;
  let refused = 0;
  for (let round = 0; round < 24; round++) {
    const x = blob(round + 1, 'c');
    await store.linkOciBlob(repo, x);
    const m = manifest(repo, round + 1, [x.sha256]);
    // Which one starts first, and how far behind the other is (a few ms: a PostgreSQL push is
    // several statements, an unlink two), vary by round.
    const delay = (ms: number) => (ms === 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms)));
    const lag = Math.floor(round / 2) % 6;
    const [pushLag, unlinkLag] = round % 2 === 0 ? [0, lag * 2] : [lag % 2, 0];
    const [push, collected] = await Promise.all([
      delay(pushLag).then(() => store.putOciManifest(m, bytesOf(m), 'latest')).then(
        () => 'pushed' as const,
        (err: unknown) => err,
      ),
      delay(unlinkLag).then(async () => {
        await other.unlinkOciBlob(repo, x.sha256);
        return collect(other, x.sha256);
      }),
    ]);
    if (push === 'pushed') {
      pushed++;
      assert.equal(collected, false, `round ${round}: the manifest was pushed, yet its blob was collected`);
      assert.equal(await other.beginCollect(x.sha256, fromNow(-hour), now()), false, `round ${round}: a pushed manifest's blob must stay held`);
      assert.ok(await store.getBlob(x.sha256), `round ${round}: the blob's record stays`);
    } else {
      assert.ok(push instanceof OciError && push.ociCode === 'MANIFEST_BLOB_UNKNOWN', `round ${round}: ${String(push)}`);
      refused++;
      assert.equal(await other.getOciManifest(repo, { sha256: m.sha256 }), undefined, `round ${round}: a refused manifest is not kept`);
      assert.deepEqual(await other.blobOwners(m.sha256), [], `round ${round}: a refused manifest holds nothing`);
    }
  }
  return { pushed, refused };
}

/**
 * A driver whose push checks the links, waits (on the network, say), then holds the blobs and
 * records the manifest: its check and its write are two steps, and a collection slips in between.
 */
class CheckThenWrite extends MemoryMetaStore {
  override async putOciManifest(manifest: OciManifest, bytes: BlobRef, tag?: string): Promise<void> {
    for (const b of manifest.blobs) if (!(await this.ociBlobLinked(manifest.repository, b))) throw new OciError('MANIFEST_BLOB_UNKNOWN', `blob sha256:${b} is not in ${manifest.repository}`);
    await tick();
    await this.holdBlobs(ociOwners.manifest(manifest.repository, manifest.sha256), manifest.blobs.map((sha256) => ({ sha256, size: 0, format: { kind: 'oci' } })));
    await super.putOciManifest(manifest, bytes, tag);
  }
}

test('the suite catches a driver that checks the links, yields, then writes: a pushed manifest whose blob was collected', async () => {
  const racy = new CheckThenWrite();
  await assert.rejects(unlinkWhilePushing({ store: racy, peer: () => racy.share() }), /yet its blob was collected|must stay held/);
});
