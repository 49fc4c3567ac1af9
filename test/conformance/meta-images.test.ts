/**
 * The ImageCatalog contract (src/meta/store.ts), run against every metadata driver: images,
 * aliases, deltas and publication, as the use cases in src/core and src/mirror rely on them. The
 * last test shows the concurrency checks catch a driver that reads, yields and writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Image } from '../../src/domain/image.ts';
import type { MetaStore } from '../../src/meta/store.ts';
import { AppError, ErrorCodes } from '../../src/errors.ts';
import { alias, delta, fromNow, metaDrivers, rejectsWith, sha, splitImage, type OpenedMeta } from './meta-drivers.ts';

const fp = (n: number) => sha('c', n);

/** Two edits made from one read, on two handles at once: one lands, the other is refused. */
async function concurrentEdits({ store, peer }: OpenedMeta): Promise<void> {
  await store.insertImage(splitImage(fp(1), { revision: 7 }), []);
  const read = (await store.getImage(fp(1)))!;
  assert.equal(read.revision, 1, 'an inserted image starts at 1, whatever the record said');
  const other = peer();
  const outcomes = await Promise.allSettled([
    store.updateImage({ ...read, properties: { by: 'first' } }),
    other.updateImage({ ...read, properties: { by: 'second' } }),
  ]);
  assert.deepEqual(outcomes.map((o) => o.status).sort(), ['fulfilled', 'rejected']);
  const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
  assert.equal((refused.reason as { code: string }).code, 'precondition_failed');
  const now = (await other.getImage(fp(1)))!;
  assert.equal(now.revision, 2);
  assert.ok(['first', 'second'].includes(now.properties.by!));
  // An edit from the old read is refused later too; from the new one, it lands.
  await rejectsWith(store.updateImage({ ...read, public: false }), 'precondition_failed');
  await store.updateImage({ ...now, public: false });
  assert.equal((await store.getImage(fp(1)))!.revision, 3);
  // Publishing moves it as well (what clients see changed), publishing again does not.
  await store.publishImages([fp(1)]);
  assert.equal((await store.getImage(fp(1)))!.revision, 4);
  await store.publishImages([fp(1)]);
  assert.equal((await store.getImage(fp(1)))!.revision, 4);
}

/** Deletes of overlapping sets on two handles at once: one deletes all it names, the other nothing. */
async function overlappingDeletes({ store, peer }: OpenedMeta): Promise<void> {
  for (const n of [1, 2, 3, 4]) await store.insertImage(splitImage(fp(n)), [alias(`a${n}`, fp(n))]);
  await rejectsWith(store.deleteImages([fp(1), fp(2), fp(9)]), 'not_found');
  assert.deepEqual((await store.listImages()).map((i) => i.fingerprint), [fp(1), fp(2), fp(3), fp(4)], 'one missing: none deleted');
  await store.deleteImages([fp(4), fp(4)]);
  await store.deleteImages([]);
  // Two processes delete overlapping sets at once: one deletes its whole set, the other nothing.
  const other = peer();
  const outcomes = await Promise.allSettled([store.deleteImages([fp(1), fp(2)]), other.deleteImages([fp(2), fp(3)])]);
  assert.deepEqual(outcomes.map((o) => o.status).sort(), ['fulfilled', 'rejected']);
  const left = (await store.listImages()).map((i) => i.fingerprint);
  assert.ok(JSON.stringify(left) === JSON.stringify([fp(3)]) || JSON.stringify(left) === JSON.stringify([fp(1)]), `left: ${left}`);
  assert.deepEqual((await store.listAliases()).map((a) => a.fingerprint), left, 'aliases go with their image, and only then');
}

for (const driver of metaDrivers) {
  test(`${driver.name} images: a record reads back field for field, as a copy`, async (t) => {
    const { store } = await driver.open(t);
    const image: Image = splitImage(fp(1), {
      public: false,
      expiresAt: '2030-01-01T00:00:00.000Z',
      lastUsedAt: '2026-12-01T00:00:00.000Z',
      properties: { os: 'Debian', release: 'bookworm', description: 'Debian 12 « é » 😀' },
      templates: { '/etc/hostname': { when: ['create', 'copy'], template: 'hostname.tpl', properties: { a: 'b' } } },
      autoUpdate: true,
      cached: true,
      updateSource: { server: 'https://images.example.org', protocol: 'simplestreams', alias: 'debian/12', certificate: '', imageType: 'container' },
      productAliases: ['debian/12', 'debian/bookworm'],
      channels: ['daily', 'default'],
      pinned: ['daily'],
      mirror: 'deb',
      deltas: [delta(sha('d', 2), '20261120_05:24'), delta(sha('d', 1), '20261121_05:24')],
      type: 'virtual-machine',
      rootfs: { sha256: sha('f', 1), size: 2000, format: { kind: 'qcow2' } },
    });
    await store.insertImage(image, [alias('web', fp(1), 'the web one')]);
    const expected = structuredClone({ ...image, deltas: [...image.deltas].sort((a, b) => a.base.localeCompare(b.base)) });
    assert.deepEqual(await store.getImage(fp(1)), expected);
    assert.deepEqual(await store.findImages(fp(1)), [expected]);
    assert.deepEqual(await store.listImages(), [expected]);
    assert.deepEqual(await store.getAlias('web'), alias('web', fp(1), 'the web one'));

    // Neither what was handed in nor what came out is the store's own object.
    image.properties.os = 'changed';
    const read = (await store.getImage(fp(1)))!;
    read.properties.release = 'changed';
    read.deltas.pop();
    assert.deepEqual(await store.getImage(fp(1)), expected);

    const unified = splitImage(fp(2), { rootfs: null, size: 100, metadata: { sha256: sha('e', 2), size: 100, format: { kind: 'tarball', compression: 'gzip' } } });
    await store.insertImage(unified, []);
    assert.deepEqual(await store.getImage(fp(2)), unified);
    assert.equal(await store.getImage(fp(3)), undefined);
  });

  test(`${driver.name} images: insertImage is all or nothing; an existing image or alias is a conflict`, async (t) => {
    const { store } = await driver.open(t);
    await store.insertImage(splitImage(fp(1)), [alias('taken', fp(1))]);

    await rejectsWith(store.insertImage(splitImage(fp(1), { filename: 'again' }), []), 'conflict');
    assert.equal((await store.getImage(fp(1)))!.filename, 'f');

    const fresh = splitImage(fp(2), { deltas: [delta(sha('d', 9), 'v1')] });
    await rejectsWith(store.insertImage(fresh, [alias('free', fp(2)), alias('taken', fp(2))]), 'conflict');
    await rejectsWith(store.insertImage(fresh, [alias('twice', fp(2)), alias('twice', fp(2))]), 'conflict');
    await rejectsWith(store.insertImage(fresh, [alias('elsewhere', fp(7))]), 'not_found');
    assert.equal(await store.getImage(fp(2)), undefined);
    for (const name of ['free', 'twice', 'elsewhere']) assert.equal(await store.getAlias(name), undefined);
    for (const blob of [fresh.metadata.sha256, fresh.rootfs!.sha256, sha('d', 9)]) assert.equal(await store.getBlob(blob), undefined, blob);
    assert.deepEqual(await store.listAliases(), [alias('taken', fp(1))]);

    // An alias may name another image that exists.
    await store.insertImage(fresh, [alias('mine', fp(2)), alias('theirs', fp(1))]);
    assert.deepEqual((await store.listAliases()).map((a) => [a.name, a.fingerprint]), [['mine', fp(2)], ['taken', fp(1)], ['theirs', fp(1)]]);
  });

  test(`${driver.name} images: lists are ordered (upload time then fingerprint; prefixes by fingerprint)`, async (t) => {
    const { store } = await driver.open(t);
    const at = (hour: number) => `2026-11-22T${String(hour).padStart(2, '0')}:00:00.000Z`;
    const images = [
      splitImage(sha('ab', 3), { uploadedAt: at(9) }),
      splitImage(sha('ab', 1), { uploadedAt: at(10) }),
      splitImage(sha('ac', 2), { uploadedAt: at(9) }),
      splitImage(sha('0', 4), { uploadedAt: at(8) }),
    ];
    for (const image of images) await store.insertImage(image, []);
    assert.deepEqual((await store.listImages()).map((i) => i.fingerprint), [sha('0', 4), sha('ab', 3), sha('ac', 2), sha('ab', 1)]);
    assert.deepEqual((await store.findImages('ab')).map((i) => i.fingerprint), [sha('ab', 1), sha('ab', 3)]);
    assert.deepEqual((await store.findImages('a')).map((i) => i.fingerprint), [sha('ab', 1), sha('ab', 3), sha('ac', 2)]);
    assert.deepEqual((await store.findImages('')).map((i) => i.fingerprint), [sha('0', 4), sha('ab', 1), sha('ab', 3), sha('ac', 2)]);
    assert.deepEqual((await store.findImages(sha('ab', 3))).map((i) => i.fingerprint), [sha('ab', 3)]);
    assert.deepEqual(await store.findImages('b'), []);
    assert.deepEqual(await store.findImages(sha('ab', 3) + '0'), []);
  });

  test(`${driver.name} images: images sharing a blob share its record, the first one's`, async (t) => {
    const { store } = await driver.open(t);
    const first = splitImage(fp(1));
    await store.insertImage(first, []);
    const second = splitImage(fp(2), { metadata: { ...first.metadata, size: 999, format: { kind: 'tarball', compression: 'gzip' } } });
    await store.insertImage(second, []);
    assert.deepEqual((await store.getImage(fp(2)))!.metadata, first.metadata);
    await store.deleteImages([fp(1)]);
    assert.equal((await store.getBlob(first.metadata.sha256))!.referenced, true);
    assert.equal((await store.getBlob(first.rootfs!.sha256))!.referenced, false);
  });

  test(`${driver.name} images: updateImage replaces the editable fields only`, async (t) => {
    const { store } = await driver.open(t);
    const image = splitImage(fp(1), { productAliases: ['p/1'], mirror: 'm' });
    await store.insertImage(image, []);
    const edited: Image = {
      ...image,
      public: false,
      properties: { os: 'Alpine' },
      expiresAt: '2031-01-01T00:00:00.000Z',
      lastUsedAt: '2026-12-24T00:00:00.000Z',
      autoUpdate: true,
      cached: true,
      updateSource: { server: 's', protocol: 'lxd', alias: 'a', certificate: 'PEM', imageType: 'container' },
      channels: ['stable'],
      pinned: ['stable'],
    };
    await store.updateImage({ ...edited, filename: 'other', architecture: 'aarch64', productAliases: [], mirror: null, uploadedAt: fromNow(0), size: 1 });
    assert.deepEqual(await store.getImage(fp(1)), { ...edited, revision: 2 });
    await store.updateImage({ ...image, revision: 2 });
    assert.deepEqual(await store.getImage(fp(1)), { ...image, revision: 3 });
    await rejectsWith(store.updateImage(splitImage(fp(2))), 'not_found');
    assert.equal(await store.getImage(fp(2)), undefined);
  });

  test(`${driver.name} channels: settings are put, replaced and listed by name, on every handle`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    assert.deepEqual(await store.listChannels(), []);
    await store.putChannel({ name: 'stable', keep: 3, gate: 'auto' });
    await other.putChannel({ name: 'daily', keep: null, gate: null });
    await other.putChannel({ name: 'stable', keep: 5, gate: 'manual' });
    assert.deepEqual(await store.listChannels(), [
      { name: 'daily', keep: null, gate: null },
      { name: 'stable', keep: 5, gate: 'manual' },
    ]);
  });

  test(`${driver.name} images: a change of channels is recorded with the edit, by whom and when; nothing else is`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    await store.insertImage(splitImage(fp(1)), []);
    const read = (await store.getImage(fp(1)))!;
    const before = Date.now();
    await store.updateImage({ ...read, channels: ['daily', 'default'] }, 'alice@build-1');
    await rejectsWith(other.updateImage({ ...read, channels: [] }, 'bob@host'), 'precondition_failed');
    await other.updateImage({ ...(await other.getImage(fp(1)))!, properties: { os: 'Edited' } }, 'bob@host');
    await other.updateImage({ ...(await other.getImage(fp(1)))!, channels: ['daily'] });
    const history = await other.channelHistory(fp(1));
    assert.deepEqual(
      history.map(({ at: _at, ...rest }) => rest),
      [
        { fingerprint: fp(1), revision: 2, from: ['default'], to: ['daily', 'default'], actor: 'alice@build-1' },
        { fingerprint: fp(1), revision: 4, from: ['daily', 'default'], to: ['daily'], actor: '' },
      ],
    );
    for (const change of history) assert.ok(Date.parse(change.at) >= before - 60_000 && Date.parse(change.at) <= Date.now() + 60_000, change.at);
    assert.deepEqual(await store.channelHistory(fp(2)), []);
    // Kept when the image goes: who moved what stays on record.
    await store.deleteImages([fp(1)]);
    assert.equal((await store.channelHistory(fp(1))).length, 2);
  });

  test(`${driver.name} images: updateImage compares and sets the revision: of two edits from one read, on two handles, one lands`, async (t) => {
    await concurrentEdits(await driver.open(t));
  });

  test(`${driver.name} images: deleteImages is all or nothing, also against a delete racing it`, async (t) => {
    await overlappingDeletes(await driver.open(t));
  });

  test(`${driver.name} images: deleteImages takes the aliases and deltas with it; a second delete is not_found`, async (t) => {
    const { store } = await driver.open(t);
    await store.insertImage(splitImage(fp(1), { deltas: [delta(sha('d', 1), 'v1')] }), [alias('a', fp(1)), alias('b', fp(1))]);
    await store.insertImage(splitImage(fp(2)), [alias('c', fp(2))]);
    await store.deleteImages([fp(1)]);
    assert.equal(await store.getImage(fp(1)), undefined);
    assert.deepEqual(await store.listAliases(), [alias('c', fp(2))]);
    // The blob records stay for the collector, unused.
    for (const blob of [sha('e', 1), sha('f', 1), sha('d', 1)]) assert.equal((await store.getBlob(blob))?.referenced, false, blob);
    await rejectsWith(store.deleteImages([fp(1)]), 'not_found');
    assert.deepEqual((await store.listImages()).map((i) => i.fingerprint), [fp(2)]);
    // The fingerprint is free again, with its deltas gone.
    await store.insertImage(splitImage(fp(1)), []);
    assert.deepEqual((await store.getImage(fp(1)))!.deltas, []);
  });

  test(`${driver.name} images: deltas are attached idempotently, in order, and only to an image that exists`, async (t) => {
    const { store } = await driver.open(t);
    await store.insertImage(splitImage(fp(1)), []);
    await store.addDeltas(fp(1), [delta(sha('d', 3), 'v3'), delta(sha('d', 1), 'v1')]);
    await store.addDeltas(fp(1), [delta(sha('d', 1), 'v1'), delta(sha('d', 2), 'v2')]);
    await store.addDeltas(fp(1), []);
    assert.deepEqual((await store.getImage(fp(1)))!.deltas, [delta(sha('d', 1), 'v1'), delta(sha('d', 2), 'v2'), delta(sha('d', 3), 'v3')]);
    assert.deepEqual((await store.listImages())[0]!.deltas.map((d) => d.base), ['v1', 'v2', 'v3']);
    assert.equal((await store.getBlob(sha('d', 2)))!.referenced, true);
    await rejectsWith(store.addDeltas(fp(9), [delta(sha('d', 4), 'v4')]), 'not_found');
    assert.equal(await store.getBlob(sha('d', 4)), undefined);
  });

  test(`${driver.name} images: publishImages makes a whole version public at once, skipping unknown ones`, async (t) => {
    const { store } = await driver.open(t);
    for (const n of [1, 2, 3]) await store.insertImage(splitImage(fp(n), { public: false }), []);
    const before = await store.changeVersion();
    await store.publishImages([]);
    assert.equal(await store.changeVersion(), before);
    await store.publishImages([fp(1), fp(2), fp(9)]);
    assert.deepEqual((await store.listImages()).map((i) => i.public), [true, true, false]);
    await store.publishImages([fp(1)]);
    assert.equal((await store.getImage(fp(1)))!.public, true);
  });

  test(`${driver.name} images: a public image deleted starts the grace period of all its files, deltas included; made private, none`, async (t) => {
    const { store } = await driver.open(t);
    const files = (n: number) => [sha('e', n), sha('f', n), sha('d', n)];
    for (const n of [1, 2, 3]) await store.insertImage(splitImage(fp(n), { public: n !== 3, deltas: [delta(sha('d', n), 'v0')] }), []);
    for (const blob of files(1)) assert.equal((await store.getBlob(blob))!.unpublishedAt, null);

    const start = fromNow(-1);
    await store.deleteImages([fp(1)]);
    await store.updateImage({ ...(await store.getImage(fp(2)))!, public: false });
    await store.deleteImages([fp(3)]);
    const end = fromNow(1);
    for (const blob of files(1)) {
      const stamp = (await store.getBlob(blob))!.unpublishedAt;
      assert.ok(stamp !== null && stamp > start && stamp < end, `${blob}: ${stamp}`);
    }
    // Made private: private at once, no grace period (its files stay its own, unpublished).
    // Never published: nothing to wait for.
    for (const blob of [...files(2), ...files(3)]) assert.equal((await store.getBlob(blob))!.unpublishedAt, null);

    // A private image deleted afterwards has been out of every index since: no grace either.
    await store.deleteImages([fp(2)]);
    for (const blob of files(2)) assert.equal((await store.getBlob(blob))!.unpublishedAt, null);
  });

  test(`${driver.name} aliases: unique names in code point order; create, rename and delete say what is wrong`, async (t) => {
    const { store } = await driver.open(t);
    await store.insertImage(splitImage(fp(1)), []);
    await store.insertImage(splitImage(fp(2), { type: 'virtual-machine' }), []);
    const names = ['b', 'B', 'a/1', 'a', 'é', '😀', '\uFFFD', 'a-1'];
    for (const name of names) await store.createAlias(alias(name, fp(1), `about ${name}`));
    assert.deepEqual(
      (await store.listAliases()).map((a) => a.name),
      [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
    );
    assert.deepEqual((await store.listAliases()).map((a) => a.name), ['B', 'a', 'a-1', 'a/1', 'b', 'é', '\uFFFD', '😀']);

    await rejectsWith(store.createAlias(alias('a', fp(2))), 'conflict');
    await rejectsWith(store.createAlias(alias('new', fp(9))), 'not_found');
    assert.equal(await store.getAlias('new'), undefined);
    assert.equal((await store.getAlias('a'))!.fingerprint, fp(1));

    await store.renameAlias('a', 'z');
    assert.equal(await store.getAlias('a'), undefined);
    assert.deepEqual(await store.getAlias('z'), { ...alias('z', fp(1), 'about a') });
    await store.renameAlias('z', 'z');
    assert.deepEqual(await store.getAlias('z'), alias('z', fp(1), 'about a'));
    await rejectsWith(store.renameAlias('z', 'b'), 'conflict');
    await rejectsWith(store.renameAlias('nothing', 'y'), 'not_found');
    assert.ok(await store.getAlias('z'));
    assert.equal(await store.getAlias('y'), undefined);

    await store.deleteAlias('z');
    await rejectsWith(store.deleteAlias('z'), 'not_found');
    assert.equal((await store.listAliases()).length, names.length - 1);
  });

  test(`${driver.name} aliases: moveAliases moves every alias of an image at once, to an image that exists`, async (t) => {
    const { store } = await driver.open(t);
    await store.insertImage(splitImage(fp(1)), [alias('one', fp(1)), alias('two', fp(1))]);
    await store.insertImage(splitImage(fp(2), { type: 'virtual-machine' }), [{ ...alias('other', fp(2)), type: 'virtual-machine' }]);
    await store.insertImage(splitImage(fp(3)), []);
    await rejectsWith(store.moveAliases(fp(1), fp(9)), 'not_found');
    assert.equal((await store.getAlias('one'))!.fingerprint, fp(1));

    await store.moveAliases(fp(1), fp(2));
    assert.deepEqual(await store.listAliases(), [
      { ...alias('one', fp(2)), type: 'virtual-machine' },
      { ...alias('other', fp(2)), type: 'virtual-machine' },
      { ...alias('two', fp(2)), type: 'virtual-machine' },
    ]);
    // Nothing to move is not an error.
    await store.moveAliases(fp(3), fp(1));
    assert.equal((await store.listAliases()).length, 3);
    // The old image can go without taking them.
    await store.deleteImages([fp(1)]);
    assert.equal((await store.listAliases()).length, 3);
  });

  test(`${driver.name} images: what one handle writes, another (another process) reads`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    await store.insertImage(splitImage(fp(1)), [alias('x', fp(1))]);
    assert.equal((await other.getImage(fp(1)))!.fingerprint, fp(1));
    await other.deleteImages([fp(1)]);
    assert.equal(await store.getImage(fp(1)), undefined);
    assert.equal(await store.getAlias('x'), undefined);
    // Two handles racing for one fingerprint: exactly one wins.
    const results = await Promise.allSettled([store.insertImage(splitImage(fp(2)), [alias('y', fp(2))]), other.insertImage(splitImage(fp(2)), [alias('y', fp(2))])]);
    assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    assert.equal((await other.listImages()).length, 1);
  });
}

/**
 * What a networked driver would be without transactions or compare-and-set: it reads, waits on
 * the network, then writes blindly. The suite must catch it, or it proves nothing.
 */
function yieldingCatalog(opened: OpenedMeta): OpenedMeta {
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  const naive = (store: MetaStore): MetaStore =>
    Object.assign(Object.create(store) as MetaStore, {
      async deleteImages(fingerprints: string[]) {
        for (const fingerprint of fingerprints) if (!(await store.getImage(fingerprint))) throw new AppError(ErrorCodes.notFound, `Image "${fingerprint}" not found`);
        await tick();
        for (const fingerprint of fingerprints) await store.deleteImages([fingerprint]).catch(() => {});
      },
      async updateImage(image: Image) {
        const current = await store.getImage(image.fingerprint);
        if (current?.revision !== image.revision) throw new AppError(ErrorCodes.preconditionFailed, 'changed');
        await tick();
        // The check above is stale by now: the write goes ahead on whatever revision is stored.
        await store.updateImage({ ...image, revision: (await store.getImage(image.fingerprint))!.revision });
      },
    });
  return { store: naive(opened.store), peer: () => naive(opened.peer()) };
}

test('the suite catches a driver that reads, yields and writes: lost edits, deletes that half happen', async (t) => {
  const memory = metaDrivers.find((d) => d.name === 'memory')!;
  await assert.rejects(concurrentEdits(yieldingCatalog(await memory.open(t))), 'two edits from one read both land');
  await assert.rejects(overlappingDeletes(yieldingCatalog(await memory.open(t))), 'two overlapping deletes both succeed');
});
