/**
 * The REST API answers as incusd does where clients read the difference: the project field,
 * ETags and If-Match, X-Incus-Type on exports, fingerprint prefixes in any case, one not-found
 * answer for missing and private images, 201 + Location for alias creation, and the upload
 * headers in every form the clients send them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, trustedClient, wharfOk } from '../helpers/env.ts';
import { apiCaller, fetchRaw } from '../helpers/http.ts';

test('REST parity with incusd: project, ETag and If-Match, X-Incus-Type, fingerprint case, one not-found answer, alias 201', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const pub = await buildUnified(work, { name: 'pub.tar.gz', seed: 'pub', properties: { os: 'Pub', release: '1', architecture: 'amd64' } });
  const priv = await buildUnified(work, { name: 'priv.tar.gz', seed: 'priv', properties: { os: 'Priv', release: '1', architecture: 'amd64' } });
  const fpPub = fingerprintFrom(await wharfOk(data, ['image', 'import', pub.path, '--alias', 'pub']));
  const fpPriv = fingerprintFrom(await wharfOk(data, ['image', 'import', priv.path, '--private', '--alias', 'priv']));
  const zfs = await buildUnified(work, { name: 'zfs.tar.gz', seed: 'zfs', properties: { os: 'FreeBSD', release: '14', variant: 'default+zfs', architecture: 'amd64' } });
  const fpZfs = fingerprintFrom(await wharfOk(data, ['image', 'import', zfs.path]));
  const admin = await trustedClient(work, data);
  const server = await serve(t, data);
  const api = apiCaller(server);
  const json = (r: { body: Buffer }) => JSON.parse(r.body.toString());

  // A variant with a "+" (FreeBSD's default+zfs) names its product alias, raw or encoded.
  for (const path of ['freebsd/14/default+zfs', 'freebsd%2F14%2Fdefault%2Bzfs']) {
    assert.equal(json(await api(undefined, 'GET', `/1.0/images/aliases/${path}`)).metadata?.target, fpZfs, path);
  }

  // The project field, on one image and in lists.
  const one = await api(undefined, 'GET', `/1.0/images/${fpPub}`);
  assert.equal(json(one).metadata.project, 'default');
  assert.equal(json(await api(undefined, 'GET', '/1.0/images?recursion=1')).metadata[0].project, 'default');

  // A prefix in any case finds the image, as the daemons' LIKE match does.
  assert.equal(json(await api(undefined, 'GET', `/1.0/images/${fpPub.slice(0, 12).toUpperCase()}`)).metadata.fingerprint, fpPub);

  // Missing and private (to a stranger) get the same answer, the one LXD and incusd give a
  // missing image (interop/lxd-api.test.ts compares it with the real daemon).
  const missing = await api(undefined, 'GET', `/1.0/images/${'0'.repeat(64)}`);
  const hidden = await api(undefined, 'GET', `/1.0/images/${fpPriv}`);
  assert.equal(missing.status, 404);
  assert.equal(hidden.status, 404);
  assert.equal(json(missing).error, 'Image not found');
  assert.deepEqual(json(hidden), json(missing));
  assert.deepEqual(json(await api(undefined, 'GET', `/1.0/images/${fpPriv.slice(0, 8)}/export`)), json(missing));

  // ETags: on an image and an alias, changing when the image does; an edit from a stale read fails.
  const etag = one.headers.etag as string;
  assert.match(etag, /^"[0-9a-f]{64}"$/);
  assert.equal((await api(undefined, 'GET', `/1.0/images/${fpPub}`)).headers.etag, etag, 'stable');
  assert.match(String((await api(undefined, 'GET', '/1.0/images/aliases/pub')).headers.etag), /^"[0-9a-f]{64}"$/);
  const patched = await api(admin, 'PATCH', `/1.0/images/${fpPub}`, JSON.stringify({ properties: { note: 'one' } }), { 'if-match': etag });
  assert.equal(patched.status, 200, patched.body.toString());
  const after = (await api(undefined, 'GET', `/1.0/images/${fpPub}`)).headers.etag as string;
  assert.notEqual(after, etag, 'the ETag follows the properties');
  const stale = await api(admin, 'PATCH', `/1.0/images/${fpPub}`, JSON.stringify({ properties: { note: 'two' } }), { 'if-match': etag });
  assert.equal(stale.status, 412);
  assert.match(json(stale).error, /^ETag doesn't match: [0-9a-f]{64} vs [0-9a-f]{64}$/);
  assert.equal(json(await api(undefined, 'GET', `/1.0/images/${fpPub}`)).metadata.properties.note, 'one', 'the stale edit changed nothing');
  assert.equal((await api(admin, 'PUT', `/1.0/images/${fpPub}`, JSON.stringify({ public: true, properties: { os: 'Pub' } }), { 'if-match': after.slice(1, -1) })).status, 200, 'an unquoted tag, as incusd takes it');
  assert.equal((await api(admin, 'PATCH', `/1.0/images/${fpPub}`, JSON.stringify({}), { 'if-match': '*' })).status, 200);
  assert.equal((await api(admin, 'PATCH', `/1.0/images/${fpPub}`, JSON.stringify({}), { 'if-match': `W/${after}` })).status, 412, 'a weak tag never matches an edit');

  // Exports say what kind of image they are.
  const exported = await api(undefined, 'GET', `/1.0/images/${fpPub}/export`);
  assert.equal(exported.status, 200);
  assert.equal(exported.headers['x-incus-type'], 'incus');

  // Alias creation and renaming: 201 with where the alias now is.
  const created = await api(admin, 'POST', '/1.0/images/aliases', JSON.stringify({ name: 'made', target: fpPub }));
  assert.equal(created.status, 201);
  assert.equal(created.headers.location, '/1.0/images/aliases/made');
  assert.equal(json(created).metadata, null);
  const renamed = await api(admin, 'POST', '/1.0/images/aliases/made', JSON.stringify({ name: 'made-2' }));
  assert.equal(renamed.status, 201);
  assert.equal(renamed.headers.location, '/1.0/images/aliases/made-2');
});

test('uploads read X-Incus-* headers as incusd does: repeated properties, public spellings, alias encodings, conflicts', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  await wharfOk(data, ['image', 'import', (await buildUnified(work, { name: 'first.tar.gz', seed: 'first' })).path, '--alias', 'taken']);
  const admin = await trustedClient(work, data);
  const server = await serve(t, data);
  const api = apiCaller(server);
  const upload = async (seed: string, headers: string[]) => {
    const file = await buildUnified(work, { name: `${seed}.tar.gz`, seed, properties: { os: 'Up', release: seed, architecture: 'amd64' } });
    // A header given a list is sent once per value.
    const raw: Record<string, string[]> = { 'content-type': ['application/octet-stream'] };
    for (let i = 0; i < headers.length; i += 2) (raw[headers[i]!] ??= []).push(headers[i + 1]!);
    const res = await fetchRaw(`${server.base}/1.0/images`, { ca: server.tls.cert, cert: admin.cert, key: admin.private, method: 'POST', headers: raw as unknown as Record<string, string>, body: await readFile(file.path) });
    return { file, res };
  };
  const image = async (fp: string) => JSON.parse((await api(admin, 'GET', `/1.0/images/${fp}`)).body.toString()).metadata;

  const a = await upload('a', ['X-Incus-properties', 'colour=red&shape=round', 'X-Incus-properties', 'colour=blue&size=big', 'X-Incus-public', 'Yes', 'X-Incus-aliases', 'alias=one&alias=two']);
  assert.equal(a.res.status, 202, a.res.body.toString());
  const got = await image(a.file.sha256);
  assert.deepEqual([got.properties.colour, got.properties.shape, got.properties.size], ['red', 'round', 'big'], 'every header counts, the first value wins');
  assert.equal(got.public, true, '"Yes" is true, as incusd reads it');
  assert.deepEqual(got.aliases.map((x: { name: string }) => x.name).sort(), ['one', 'two']);

  const b = await upload('b', ['X-LXD-aliases', 'bare', 'X-LXD-public', 'off']);
  assert.equal(b.res.status, 202, b.res.body.toString());
  assert.deepEqual((await image(b.file.sha256)).aliases.map((x: { name: string }) => x.name), ['bare'], 'a bare name, as older clients send it');
  assert.equal((await image(b.file.sha256)).public, false);

  // An alias already taken: the upload is refused and leaves no image behind.
  const c = await upload('c', ['X-Incus-aliases', 'alias=taken']);
  assert.equal(c.res.status, 409);
  assert.match(JSON.parse(c.res.body.toString()).error, /Alias "taken" already exists/);
  assert.equal((await api(admin, 'GET', `/1.0/images/${c.file.sha256}`)).status, 404);
});
