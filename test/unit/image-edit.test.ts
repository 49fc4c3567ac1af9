/** The one set of rules for editing an image: `wharf image edit` and PUT/PATCH over the LXD API. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyImageEdit, imageEditFrom, setProperty, unchangedSince } from '../../src/core/images.ts';
import { toApiImage } from '../../src/domain/lxd-api.ts';
import { MemoryMetaStore } from '../../src/meta/memory.ts';
import { isAppError } from '../../src/errors.ts';
import { imageRecord } from '../helpers/image-record.ts';
import { sha, splitImage } from '../conformance/meta-drivers.ts';

const fp = 'ab'.repeat(32);
const image = imageRecord({ fingerprint: fp, public: true, properties: { os: 'Debian', release: '12' }, expiresAt: '2030-01-01T00:00:00.000Z' });
const refused = (pattern: RegExp) => (err: unknown) => isAppError(err, 'invalid_argument') && pattern.test(err.message);

test('an edit changes what it gives and keeps what it leaves out', () => {
  assert.deepEqual(imageEditFrom(image, {}, 'replace'), {});
  assert.deepEqual(imageEditFrom(image, { public: false, auto_update: true }, 'replace'), { public: false, autoUpdate: true });
  // The whole document `image show` printed changes nothing but what was edited in it.
  const shown = { ...toApiImage(image, []), public: false };
  assert.deepEqual(imageEditFrom(image, shown, 'replace'), {
    public: false,
    autoUpdate: false,
    properties: { os: 'Debian', release: '12' },
    expiresAt: '2030-01-01T00:00:00.000Z',
  });
});

test('properties: replaced whole, or merged key by key; YAML numbers and booleans count as text', () => {
  assert.deepEqual(imageEditFrom(image, { properties: { os: 'Ubuntu' } }, 'replace').properties, { os: 'Ubuntu' });
  assert.deepEqual(imageEditFrom(image, { properties: { os: 'Ubuntu', serial: 7 } }, 'merge').properties, { os: 'Ubuntu', release: '12', serial: '7' });
  assert.deepEqual(imageEditFrom(image, { properties: null }, 'replace').properties, {});
  assert.deepEqual(imageEditFrom(image, { properties: { beta: true } }, 'replace').properties, { beta: 'true' });
  assert.throws(() => imageEditFrom(image, { properties: ['a'] }, 'replace'), refused(/properties must be a mapping/));
  assert.throws(() => imageEditFrom(image, { properties: { a: { b: 1 } } }, 'merge'), refused(/properties\.a must be text/));
});

test('expires_at: a date, or never (empty, null, Go zero time)', () => {
  assert.equal(imageEditFrom(image, { expires_at: '2031-02-03T04:05:06Z' }, 'replace').expiresAt, '2031-02-03T04:05:06.000Z');
  assert.equal(imageEditFrom(image, { expires_at: new Date('2031-02-03T00:00:00Z') }, 'replace').expiresAt, '2031-02-03T00:00:00.000Z');
  for (const never of ['', null, '0001-01-01T00:00:00Z']) assert.equal(imageEditFrom(image, { expires_at: never }, 'merge').expiresAt, null, String(never));
  assert.throws(() => imageEditFrom(image, { expires_at: 'soon' }, 'replace'), refused(/expires_at: "soon" is not a date/));
  assert.throws(() => imageEditFrom(image, { expires_at: 5 }, 'replace'), refused(/expires_at must be a date/));
});

test('refused: wrong types, fixed fields with other values, a document that is not a mapping', () => {
  assert.throws(() => imageEditFrom(image, { public: 'yes' }, 'replace'), refused(/public must be true or false/));
  assert.throws(() => imageEditFrom(image, { auto_update: 1 }, 'merge'), refused(/auto_update must be true or false/));
  assert.throws(() => imageEditFrom(image, { profiles: 'default' }, 'replace'), refused(/profiles must be a list of names/));
  assert.deepEqual(imageEditFrom(image, { profiles: ['default'] }, 'replace'), {}, 'wharf keeps no profiles');
  assert.throws(() => imageEditFrom(image, { architecture: 'aarch64' }, 'replace'), refused(/architecture cannot be changed/));
  assert.throws(() => imageEditFrom(image, { fingerprint: 'cd'.repeat(32) }, 'merge'), refused(/fingerprint cannot be changed/));
  assert.deepEqual(imageEditFrom(image, { architecture: 'x86_64', size: 3, aliases: [{ name: 'ignored' }] }, 'replace'), {});
  for (const doc of [null, 'public: false', ['public']]) assert.throws(() => imageEditFrom(image, doc, 'replace'), refused(/must be a mapping/), JSON.stringify(doc));
});

test('applyImageEdit resolves IMAGE, checks, and stores; a refused edit changes nothing', async (t) => {
  const meta = new MemoryMetaStore();
  t.after(() => meta.close());
  await meta.insertImage(image, [{ name: 'deb', fingerprint: fp, description: '', type: 'container' }]);
  const edited = await applyImageEdit({ meta }, 'deb', { public: false, properties: { os: 'Debian', release: '13' } }, 'replace');
  assert.equal(edited.public, false);
  assert.deepEqual((await meta.getImage(fp))?.properties, { os: 'Debian', release: '13' });
  await assert.rejects(applyImageEdit({ meta }, fp.slice(0, 8), { public: true, type: 'virtual-machine' }, 'merge'), refused(/type cannot be changed/));
  assert.equal((await meta.getImage(fp))?.public, false);
  await assert.rejects(applyImageEdit({ meta }, 'nothing', {}, 'merge'), (err) => isAppError(err, 'not_found'));
});

/** A handle whose first write lets another process's edit land just before it (a replica, a CLI). */
function overtaken(meta: MemoryMetaStore, other: (peer: MemoryMetaStore) => Promise<void>) {
  const peer = meta.share();
  let raced = false;
  return Object.assign(Object.create(meta) as MemoryMetaStore, {
    updateImage: async (image: Parameters<MemoryMetaStore['updateImage']>[0]) => {
      if (!raced) {
        raced = true;
        await other(peer);
      }
      return meta.updateImage(image);
    },
  });
}

test('edits of different fields made at once by two processes both land; an edit made from an older version is refused', async () => {
  const meta = new MemoryMetaStore();
  const fp = sha('c', 0x1234);
  await meta.insertImage(splitImage(fp, { properties: { os: 'Debian' } }), [{ name: 'deb', fingerprint: fp, description: '', type: 'container' }]);
  // Another process sets a property between this edit's read and its write.
  const racing = overtaken(meta, async (peer) => void (await setProperty({ meta: peer }, 'deb', 'team', 'infra')));
  await setProperty({ meta: racing }, 'deb', 'release', '13');
  assert.deepEqual((await meta.getImage(fp))!.properties, { os: 'Debian', team: 'infra', release: '13' }, 'neither edit was lost');

  // An edit that names the version it was made from (If-Match, an editor session) is refused instead.
  const read = (await meta.getImage(fp))!;
  const racingAgain = overtaken(meta, async (peer) => void (await setProperty({ meta: peer }, 'deb', 'team', 'web')));
  await assert.rejects(applyImageEdit({ meta: racingAgain }, 'deb', { public: false }, 'merge', unchangedSince(read)), (err) => isAppError(err, 'precondition_failed'));
  assert.equal((await meta.getImage(fp))!.public, true, 'the refused edit changed nothing');
  assert.equal((await meta.getImage(fp))!.properties.team, 'web');
});
