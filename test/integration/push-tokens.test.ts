/**
 * Builders' push tokens over HTTPS (`wharf token add NAME --push GLOB`, then
 * `curl -H "Authorization: Bearer TOKEN" --data-binary @image.tar.gz https://HOST/1.0/images`):
 * an upload of a matching product lands in staging, private, seen by nothing public; another
 * product, a wrong, revoked or expired token, or a certificate not allowed staging uploads
 * nothing; the token is in no log line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { buildMetadataTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { until } from '../helpers/until.ts';
import { capturingLogger, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';

test('a push token uploads its products into staging, private; nothing else uploads with it', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const token = (await wharfOk(data, ['token', 'add', 'builder-1', '--push', 'pushed:*:*:*', '--push', 'also:1:amd64:default'])).trim();
  assert.match(token, /^wpt_[0-9a-f]{12}_[0-9a-f]{64}$/);
  const id = token.split('_')[1]!;
  const logs = capturingLogger();
  const server = await serve(t, data, { processes: 1, log: logs.log });
  const upload = async (body: Buffer, headers: Record<string, string>, client: { cert?: string; key?: string } = {}) =>
    fetchRaw(`${server.base}/1.0/images`, { ca: server.tls.cert, method: 'POST', body, headers: { 'content-type': 'application/octet-stream', ...headers }, ...client });
  const image = async (os: string, seed: string) => readFile((await buildUnified(work, { properties: { os, release: '1' }, seed, name: `${seed}.tar.gz` })).path);
  const listed = async () => JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])) as { fingerprint: string; public: boolean }[];

  const pushed = await upload(await image('Pushed', 'p1'), { authorization: `Bearer ${token}` });
  assert.ok(pushed.status >= 200 && pushed.status < 300, pushed.body.toString() + JSON.stringify(logs.records.filter((r) => r.level === 'error' || r.err)));
  const [stored] = await listed();
  assert.ok(stored && !stored.public, 'private');
  assert.deepEqual((JSON.parse(await wharfOk(data, ['image', 'list', 'channel=staging', '--format', 'json'])) as { fingerprint: string }[]).map((i) => i.fingerprint), [stored.fingerprint]);
  for (const path of ['/streams/v1/images.json', '/staging/streams/v1/images.json', '/catalogue/v1/products.json', `/1.0/images/${stored.fingerprint}`]) {
    const r = await fetchRaw(server.base + path, { ca: server.tls.cert });
    assert.ok(r.status === 404 || !r.body.toString().includes(stored.fingerprint), `${path} shows the staged image`);
  }

  // Nothing else uploads with it, and nothing is left of what it refused.
  const blobs = async () => (await readdir(join(data, 'blobs', 'sha256'), { recursive: true })).sort();
  const before = await blobs();
  const other = await upload(await image('Other', 'o1'), { authorization: `Bearer ${token}` });
  assert.equal(other.status, 403);
  assert.match(other.body.toString(), new RegExp(`push token ${id} may not push other:1:`));
  for (const bearer of [`wpt_${id}_${'0'.repeat(64)}`, 'not-a-token', token.toUpperCase()]) {
    assert.equal((await upload(await image('Pushed', 'p2'), { authorization: `Bearer ${bearer}` })).status, 403, bearer.slice(0, 20));
  }
  const expiring = (await wharfOk(data, ['token', 'add', 'builder-2', '--push', '*:*:*:*', '--expires', '1s'])).trim();
  await new Promise((r) => setTimeout(r, 1_200));
  assert.equal((await upload(await image('Pushed', 'p3'), { authorization: `Bearer ${expiring}` })).status, 403, 'expired');
  await wharfOk(data, ['token', 'revoke', id]);
  assert.equal((await upload(await image('Pushed', 'p4'), { authorization: `Bearer ${token}` })).status, 403, 'revoked');
  assert.equal((await listed()).length, 1);
  assert.deepEqual(await blobs(), before, 'no file of a refused upload stays');

  // Listed by id, name, globs and state; never the secret.
  const tokens = JSON.parse(await wharfOk(data, ['token', 'list', '--format', 'json'])) as { id: string; state: string; push: string[] }[];
  assert.deepEqual(tokens.map((x) => [x.state, x.push]), [
    ['revoked', ['pushed:*:*:*', 'also:1:amd64:default']],
    ['expired', ['*:*:*:*']],
  ]);

  // A certificate trusted for staging pushes there too; one trusted for another channel does not.
  const cert = async (name: string, channel: string) => {
    const made = await selfsigned.generate([{ name: 'commonName', value: name }], { keyType: 'ec' });
    await writeFile(join(work, `${name}.crt`), made.cert);
    await wharfOk(data, ['trust', 'add', join(work, `${name}.crt`), '--channel', channel]);
    return { cert: made.cert, key: made.private };
  };
  const ci = await upload(await image('Anything', 'c1'), {}, await cert('ci', 'staging'));
  assert.ok(ci.status >= 200 && ci.status < 300, ci.body.toString());
  assert.equal((await upload(await image('Anything', 'c2'), {}, await cert('reader', 'stable'))).status, 403);
  assert.equal((JSON.parse(await wharfOk(data, ['image', 'list', 'channel=staging', '--format', 'json'])) as unknown[]).length, 2);

  for (const r of logs.records) assert.ok(!JSON.stringify(r).includes(token.split('_')[2]!), 'no log line carries a token');
});

test('a push cut off half-way leaves nothing: no image, no staging file, no blob', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const token = (await wharfOk(data, ['token', 'add', 'builder', '--push', '*:*:*:*'])).trim();
  const server = await serve(t, data, { processes: 1 });
  const meta = await readFile((await buildMetadataTarball(work, { properties: { os: 'Cut', release: '1' } })).path);
  const rootfs = await readFile((await buildSquashfs(work, { seed: 'cut-push', padMiB: 16 })).path);
  const boundary = 'wharfcut';
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="metadata"; filename="meta.tar.xz"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const middle = Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="rootfs"; filename="rootfs.squashfs"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const socket = tlsConnect({ host: '127.0.0.1', port: server.httpsPort, ca: server.tls.cert, servername: 'localhost' });
  socket.on('error', () => {});
  await once(socket, 'secureConnect');
  socket.write(
    `POST /1.0/images HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${head.length + meta.length + middle.length + rootfs.length + tail.length}\r\n\r\n`,
  );
  socket.write(Buffer.concat([head, meta, middle, rootfs.subarray(0, rootfs.length >> 1)]));
  const staging = join(data, 'blobs', 'staging');
  await until('the push under way', async () => ((await readdir(staging).catch(() => [])).length ? true : undefined), 5_000);
  socket.destroy();
  await until('its staging file removed', async () => ((await readdir(staging)).length === 0 ? true : undefined), 10_000);
  assert.deepEqual(JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])), []);
  assert.deepEqual(JSON.parse(await wharfOk(data, ['image', 'staged', '--all', '--format', 'json'])), []);
  assert.deepEqual(await readdir(join(data, 'blobs', 'sha256')).catch(() => []), [], 'no blob kept');
});
