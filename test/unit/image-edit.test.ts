/** The one set of rules for editing an image: `wharf image edit` and PUT/PATCH over the LXD API. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyImageEdit, imageEditFrom } from '../../src/core/images.ts';
import { toApiImage } from '../../src/domain/lxd-api.ts';
import { MemoryMetaStore } from '../../src/meta/memory.ts';
import { isAppError } from '../../src/errors.ts';
import { imageRecord } from '../helpers/image-record.ts';

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
