/**
 * A trusted certificate restricted to channels (`wharf trust add CERT --channel stable`), over the
 * LXD API: it reads the private images of its channels (list, info, aliases, export, a secret for
 * `lxc image copy`), never another channel's private image, and changes nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, trustedClient, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';

test('a certificate restricted to a channel reads its private images only, and changes nothing', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const image = async (seed: string, args: string[]) => {
    const built = await buildUnified(work, { properties: { os: `R${seed}`, release: '1' }, seed, name: `${seed}.tar.gz` });
    return fingerprintFrom(await wharfOk(data, ['image', 'import', built.path, ...args]));
  };
  const mine = await image('mine', ['--channel', 'stable', '--private', '--alias', 'mine']);
  const theirs = await image('theirs', ['--channel', 'daily', '--private', '--alias', 'theirs']);
  const everyone = await image('public', []);
  const admin = await trustedClient(work, data);
  const tenant = await selfsigned.generate([{ name: 'commonName', value: 'tenant' }], { keyType: 'ec' });
  await writeFile(join(work, 'tenant.crt'), tenant.cert);
  assert.match(await wharfOk(data, ['trust', 'add', join(work, 'tenant.crt'), '--channel', 'stable']), /to read the channels stable/);
  assert.match(await wharfOk(data, ['trust', 'list', '--format', 'csv']), /tenant,[0-9a-f]{12},stable,/);
  const server = await serve(t, data);
  const as = (who: { cert: string; private: string }) => (path: string, options: { method?: string; body?: string } = {}) =>
    fetchRaw(server.base + path, { ca: server.tls.cert, cert: who.cert, key: who.private, ...(options.body ? { headers: { 'content-type': 'application/json' } } : {}), ...options });
  const asTenant = as(tenant);
  const asAdmin = as(admin);

  const info = JSON.parse((await asTenant('/1.0')).body.toString());
  assert.equal(info.metadata.auth, 'trusted', 'a trusted client, as the clients see it');
  const listed = (body: Buffer) => (JSON.parse(body.toString()).metadata as { fingerprint: string }[]).map((i) => i.fingerprint).sort();
  assert.deepEqual(listed((await asTenant('/1.0/images?recursion=1')).body), [mine, everyone].sort());
  assert.deepEqual(listed((await asAdmin('/1.0/images?recursion=1')).body), [mine, theirs, everyone].sort());
  assert.equal((await asTenant(`/1.0/images/${mine}`)).status, 200);
  assert.equal((await asTenant(`/1.0/images/${theirs}`)).status, 404, "another channel's private image does not exist for it");
  assert.equal((await asTenant('/1.0/images/aliases/mine')).status, 200);
  assert.equal((await asTenant('/1.0/images/aliases/theirs')).status, 404);
  assert.deepEqual(JSON.parse((await asTenant('/1.0/images/aliases')).body.toString()).metadata, ['/1.0/images/aliases/mine']);
  const exported = await asTenant(`/1.0/images/${mine}/export`);
  assert.equal(exported.status, 200);
  assert.equal((await asTenant(`/1.0/images/${theirs}/export`)).status, 404);
  // A secret for its own image (how lxc copies a private image to a daemon), none for another's.
  assert.equal((await asTenant(`/1.0/images/${mine}/secret`, { method: 'POST', body: '{}' })).status, 202);
  assert.equal((await asTenant(`/1.0/images/${theirs}/secret`, { method: 'POST', body: '{}' })).status, 404);

  // Product aliases resolve to the newest version of the viewer's channels: the default channel's
  // (the root index's) for a client with every channel, its own channels' for a restricted one.
  const version = async (seed: string, serial: string, args: string[]) => {
    const built = await buildUnified(work, { properties: { os: 'Prod', release: '1', serial }, seed, name: `${seed}.tar.gz` });
    return fingerprintFrom(await wharfOk(data, ['image', 'import', built.path, ...args]));
  };
  const rootVersion = await version('p-root', '20260101_00:00', []);
  await version('p-daily', '20260301_00:00', ['--channel', 'daily']);
  const stableVersion = await version('p-stable', '20260201_00:00', ['--channel', 'stable', '--private']);
  const target = async (who: (path: string) => ReturnType<typeof fetchRaw>) => JSON.parse((await who('/1.0/images/aliases/prod/1')).body.toString()).metadata?.target as string | undefined;
  assert.equal(await target(asAdmin), rootVersion, 'the root index names it so: not the newer daily build');
  assert.equal(await target(asTenant), stableVersion);
  const anonymous = (path: string) => fetchRaw(server.base + path, { ca: server.tls.cert });
  assert.equal(await target(anonymous), rootVersion, 'and for anyone');

  // It changes nothing, not even its own channel's images.
  for (const [method, path, body] of [
    ['PATCH', `/1.0/images/${mine}`, '{"properties":{"x":"y"}}'],
    ['DELETE', `/1.0/images/${mine}`, undefined],
    ['POST', '/1.0/images/aliases', JSON.stringify({ name: 'new', target: mine })],
    ['DELETE', '/1.0/images/aliases/mine', undefined],
  ] as const) {
    const answer = await asTenant(path, { method, ...(body ? { body } : {}) });
    assert.equal(answer.status, 403, `${method} ${path}: ${answer.body.toString()}`);
  }
  assert.equal((await asTenant('/1.0/certificates')).status, 403);
  assert.equal((await asAdmin(`/1.0/images/${mine}`, { method: 'PATCH', body: '{"properties":{"x":"y"}}' })).status, 200, 'an unrestricted one does');
});
