/** LXD API rules that the real client never lets you break: checked on the wire. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { connect } from 'node:tls';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, trustedClient, wharfOk } from '../helpers/env.ts';
import { apiCaller, fetchRaw } from '../helpers/http.ts';

test('untrusted callers cannot change anything; secrets work once; bad uploads leave nothing', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const priv = await buildUnified(work, { properties: { os: 'Secret', release: '1' }, seed: 'p', name: 'p.tar.gz' });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', priv.path, '--private', '--alias', 'hidden']));
  const admin = await trustedClient(work, data);
  const stranger = await selfsigned.generate([{ name: 'commonName', value: 'stranger' }], { keyType: 'ec' });
  const server = await serve(t, data, { maxUploadSize: 3_000_000 });

  const call = apiCaller(server);
  const json = (r: { body: Buffer }) => JSON.parse(r.body.toString());

  assert.equal(json(await call(undefined, 'GET', '/1.0')).metadata.auth, 'untrusted');
  assert.equal(json(await call(admin, 'GET', '/1.0')).metadata.auth, 'trusted');
  assert.equal(json(await call(admin, 'GET', '/1.0')).metadata.environment.certificate_fingerprint, server.tls.fingerprint);

  // Hidden from strangers on every endpoint, as "not found".
  for (const path of [`/1.0/images/${fp}`, `/1.0/images/${fp.slice(0, 8)}`, `/1.0/images/${fp}/export`, '/1.0/images/aliases/hidden']) {
    const r = await call(stranger, 'GET', path);
    assert.equal(r.status, 404, path);
    assert.equal(json(r).type, 'error');
  }
  assert.deepEqual(json(await call(stranger, 'GET', '/1.0/images')).metadata, []);
  assert.equal((await call(stranger, 'GET', '/1.0/images/aliases')).status, 403);

  // Strangers may not upload, edit, delete, alias or mint secrets.
  const unified = await readFile(priv.path);
  const forbidden = [
    await call(stranger, 'POST', '/1.0/images', unified, { 'content-type': 'application/octet-stream' }),
    await call(stranger, 'PUT', `/1.0/images/${fp}`, JSON.stringify({ public: true, properties: {} })),
    await call(stranger, 'DELETE', `/1.0/images/${fp}`),
    await call(stranger, 'POST', '/1.0/images/aliases', JSON.stringify({ name: 'x', target: fp })),
    await call(stranger, 'DELETE', '/1.0/images/aliases/hidden'),
    await call(stranger, 'POST', `/1.0/images/${fp}/secret`, '{}'),
  ];
  for (const r of forbidden) assert.equal(r.status, 403, r.body.toString());
  assert.match(await wharfOk(data, ['image', 'info', 'hidden']), /Public: no/);

  // A secret opens the private image for one download.
  const minted = await call(admin, 'POST', `/1.0/images/${fp}/secret`, '{}');
  assert.equal(minted.status, 202);
  const secret = json(minted).metadata.metadata.secret as string;
  assert.equal((await call(stranger, 'GET', `/1.0/images/${fp}?secret=${secret}`)).status, 200);
  const download = await call(stranger, 'GET', `/1.0/images/${fp}/export?secret=${secret}`);
  assert.equal(download.status, 200);
  assert.deepEqual(download.body, unified);
  assert.equal((await call(stranger, 'GET', `/1.0/images/${fp}/export?secret=${secret}`)).status, 404, 'a used secret cannot be used twice');
  assert.equal((await call(stranger, 'GET', `/1.0/images/${fp}?secret=${secret}`)).status, 404);
  assert.equal((await call(stranger, 'GET', `/1.0/images/${fp}/export?secret=${'0'.repeat(64)}`)).status, 404);

  const blobsBefore = await readdir(join(data, 'blobs', 'sha256'), { recursive: true });
  const other = await buildUnified(work, { properties: { os: 'Other', release: '1' }, seed: 'o', name: 'o.tar.gz' });
  const otherBytes = await readFile(other.path);
  const wrongFp = await call(admin, 'POST', '/1.0/images', otherBytes, { 'content-type': 'application/octet-stream', 'x-lxd-fingerprint': 'a'.repeat(64) });
  assert.equal(wrongFp.status, 400);
  assert.match(json(wrongFp).error, /Fingerprint mismatch/);
  const tooBig = await call(admin, 'POST', '/1.0/images', Buffer.concat([otherBytes, Buffer.alloc(3_000_000)]), { 'content-type': 'application/octet-stream' });
  assert.equal(tooBig.status, 413);
  const badMultipart = await call(admin, 'POST', '/1.0/images', '--x\r\nContent-Disposition: form-data; name="metadata"; filename="m"\r\n\r\nnot a tarball\r\n--x--\r\n', {
    'content-type': 'multipart/form-data; boundary=x',
  });
  assert.equal(badMultipart.status, 400);
  assert.equal(json(badMultipart).type, 'error');

  // An upload cut off mid-way.
  await new Promise<void>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: server.httpsPort, ca: server.tls.cert, servername: 'localhost', cert: admin.cert, key: admin.private }, () => {
      socket.write(`POST /1.0/images HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: ${otherBytes.length}\r\n\r\n`);
      socket.write(otherBytes.subarray(0, otherBytes.length >> 1), () => setTimeout(() => socket.destroy(), 200));
    });
    socket.on('close', () => resolve());
    socket.on('error', () => {});
  });
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(await readdir(join(data, 'blobs', 'sha256'), { recursive: true }), blobsBefore, 'failed uploads leave no blob');
  assert.deepEqual(await readdir(join(data, 'blobs', 'staging')), [], 'and no staging file');
  const list = JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])) as unknown[];
  assert.equal(list.length, 1);
});

test('a pull answers for its upstream: 502 for a corrupt, invalid or unreachable one, never a 4xx', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const admin = await trustedClient(work, data);
  const server = await serve(t, data);
  const wanted = await buildUnified(work, { seed: 'wanted', name: 'wanted.tar.gz' });
  const other = await buildUnified(work, { seed: 'other', name: 'other.tar.gz', properties: { os: 'Other', release: '2' } });
  const wantedBytes = await readFile(wanted.path);

  // An LXD-protocol upstream that lists `wanted` and sends whatever body the test chooses.
  let body: Buffer = wantedBytes;
  let infoStatus = 200;
  const upstream = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const json = (status: number, doc: unknown) => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
    if (path === `/1.0/images/${wanted.sha256}` && infoStatus !== 200) return json(infoStatus, { type: 'error', error: 'upstream broke', error_code: infoStatus });
    if (path === `/1.0/images/${wanted.sha256}`) {
      return json(200, { type: 'sync', status_code: 200, metadata: { fingerprint: wanted.sha256, filename: 'wanted.tar.gz', size: wanted.size, public: true, type: 'container', aliases: [], properties: {} } });
    }
    if (path === `/1.0/images/${wanted.sha256}/export`) return void res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
    return json(404, { type: 'error', error: 'not found', error_code: 404 });
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  t.after(() => new Promise<void>((r) => upstream.close(() => r())));
  const upstreamBase = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;

  const pull = (source: Record<string, unknown>) =>
    fetchRaw(`${server.base}/1.0/images`, {
      ca: server.tls.cert,
      cert: admin.cert,
      key: admin.private,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ source: { type: 'image', mode: 'pull', protocol: 'lxd', server: upstreamBase, fingerprint: wanted.sha256, ...source } }),
    });
  const refused = async (what: string, source: Record<string, unknown>, status: number, message: RegExp) => {
    const r = await pull(source);
    assert.equal(r.status, status, `${what}: ${r.body.toString()}`);
    const envelope = JSON.parse(r.body.toString());
    assert.equal(envelope.type, 'error', what);
    assert.equal(envelope.error_code, status, what);
    assert.match(envelope.error, message, what);
    assert.match(String(r.headers['x-request-id']), /^[0-9a-f]{16}$/, what);
  };

  body = await readFile(other.path);
  await refused('another image than the one listed', {}, 502, /Fingerprint mismatch/);
  body = Buffer.from(wantedBytes);
  body[body.length >> 1] = body[body.length >> 1]! ^ 0xff;
  await refused('a flipped byte', {}, 502, /./);
  body = Buffer.from('not an image at all, just text');
  await refused('not an image', {}, 502, /not an image file/);
  body = wantedBytes.subarray(0, wantedBytes.length >> 1);
  await refused('a cut-off export', {}, 502, /./);
  infoStatus = 500;
  await refused('an upstream answering 500', {}, 502, /upstream broke/);
  infoStatus = 200;
  await refused('an unreachable upstream', { server: 'http://127.0.0.1:1' }, 502, /Cannot reach/);
  await refused('an image the upstream does not have', { fingerprint: 'ab'.repeat(32) }, 404, /not found/);
  await refused('a pull over simplestreams from a server with no index', { protocol: 'simplestreams' }, 502, /serves no simplestreams index/);
  await refused('a pull over an unknown protocol', { protocol: 'gopher' }, 400, /Unknown image server protocol/);
  await refused('a source that is no image', { type: 'url' }, 400, /Unsupported image source/);
  assert.deepEqual(JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])), [], 'nothing was kept');

  body = wantedBytes;
  const pulled = await pull({});
  assert.equal(pulled.status, 202, pulled.body.toString());
  assert.equal(JSON.parse(pulled.body.toString()).metadata.metadata.fingerprint, wanted.sha256);
});
