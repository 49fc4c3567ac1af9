/** LXD API rules that the real client never lets you break: checked on the wire. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';

test('untrusted callers cannot change anything; secrets work once; bad uploads leave nothing', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const priv = await buildUnified(work, { properties: { os: 'Secret', release: '1' }, seed: 'p', name: 'p.tar.gz' });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', priv.path, '--private', '--alias', 'hidden']));
  const admin = await selfsigned.generate([{ name: 'commonName', value: 'admin' }], { keyType: 'ec' });
  const stranger = await selfsigned.generate([{ name: 'commonName', value: 'stranger' }], { keyType: 'ec' });
  await writeFile(join(work, 'admin.crt'), admin.cert);
  await wharfOk(data, ['trust', 'add', join(work, 'admin.crt')]);
  const server = await serve(t, data, { maxUploadSize: 3_000_000 });

  const call = (who: { cert: string; private: string } | undefined, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}) =>
    fetchRaw(server.base + path, {
      ca: server.tls.cert,
      method,
      ...(who ? { cert: who.cert, key: who.private } : {}),
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body } : {}),
    });
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
