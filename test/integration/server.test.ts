/** The simplestreams server over real HTTPS (and plain HTTP on the same port). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { buildMetadataTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { loadConfig } from '../../src/config.ts';
import { openStore } from '../../src/factory.ts';
import { silentLogger } from '../../src/log.ts';
import { collectGarbage } from '../../src/core/collect.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('index and artifacts over HTTPS and plain HTTP', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, {});
  const sq = await buildSquashfs(work, { seed: 's', padMiB: 2 });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, sq.path]));
  const secret = await buildUnified(work, { properties: { os: 'Secret', release: '1' }, seed: 'secret' });
  await wharfOk(data, ['image', 'import', secret.path, '--private']);

  const server = await serve(t, data);
  const ca = server.tls.cert;
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => fetchRaw(server.base + path, { ca, headers, method });

  const index = await get('/streams/v1/index.json');
  assert.equal(index.status, 200);
  assert.equal(index.headers['content-type'], 'application/json');
  const indexDoc = JSON.parse(index.body.toString());
  assert.deepEqual(indexDoc.index.images.products, ['testlinux:1.0:amd64:default']);
  assert.equal((await get('/streams/v1/index.json', { 'if-none-match': String(index.headers.etag) })).status, 304);

  const products = await get('/streams/v1/images.json', { 'accept-encoding': 'gzip' });
  assert.equal(products.headers['content-encoding'], 'gzip');
  const doc = JSON.parse(gunzipSync(products.body).toString());
  const version = Object.values(doc.products['testlinux:1.0:amd64:default'].versions)[0] as { items: Record<string, { path: string; sha256: string; size: number; combined_squashfs_sha256?: string }> };
  assert.equal(version.items['lxd.tar.xz']!.combined_squashfs_sha256, fp);
  assert.ok(!JSON.stringify(doc).includes(secret.sha256), 'private images are not published');

  const path = '/' + version.items['root.squashfs']!.path;
  const full = await get(path);
  assert.equal(full.status, 200);
  assert.equal(sha256(full.body), sq.sha256);
  assert.equal(full.headers['content-length'], String(sq.size));
  assert.equal(full.headers.etag, `"${sq.sha256}"`);
  assert.match(String(full.headers['cache-control']), /immutable/);

  const head = await get(path, {}, 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(sq.size));
  assert.equal(head.body.length, 0);

  const original = await readFile(sq.path);
  const part = await get(path, { range: 'bytes=100-1099' });
  assert.equal(part.status, 206);
  assert.equal(part.headers['content-range'], `bytes 100-1099/${sq.size}`);
  assert.deepEqual(part.body, original.subarray(100, 1100));
  const suffix = await get(path, { range: 'bytes=-10' });
  assert.deepEqual(suffix.body, original.subarray(original.length - 10));
  assert.equal((await get(path, { range: `bytes=${sq.size}-` })).status, 416);
  assert.equal((await get(path, { 'if-none-match': `"${sq.sha256}"` })).status, 304);

  // Clients try plain HTTP on the very same port first: artifacts are served as-is...
  const plain = await fetchRaw(`http://127.0.0.1:${server.httpsPort}${path}`);
  assert.equal(plain.status, 200);
  assert.equal(sha256(plain.body), sq.sha256);
  // ...and everything else is sent to HTTPS.
  const redirected = await fetchRaw(`http://127.0.0.1:${server.httpsPort}/streams/v1/index.json`);
  assert.equal(redirected.status, 301);
  assert.equal(redirected.headers.location, `https://127.0.0.1:${server.httpsPort}/streams/v1/index.json`);

  assert.equal((await get(`/files/${secret.sha256}.tar.gz`)).status, 404, 'a private file is not downloadable');
  assert.equal((await get('/nothing/here')).status, 404);
  assert.equal((await get('/files/..%2F..%2Fwharf.db')).status, 404);
  assert.equal((await get('/streams/v1/..%2F..%2Fwharf.db')).status, 404);
  assert.equal((await get('/files/../wharf.db')).status, 404);
  assert.equal((await get(`/files/${'0'.repeat(64)}.squashfs`)).status, 404);
});

test('a CLI change is served within a second; deleted files stay downloadable for the grace period', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const first = await buildUnified(work, { name: 'first.tar.gz', seed: 'first' });
  await wharfOk(data, ['image', 'import', first.path]);
  const server = await serve(t, data, { gracePeriod: 2 });
  const ca = server.tls.cert;
  const listed = async () => (await fetchRaw(server.base + '/streams/v1/images.json', { ca })).body.toString();

  const second = await buildUnified(work, { name: 'second.tar.gz', seed: 'second', properties: { os: 'Other', release: '9' } });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', second.path]));
  const imported = Date.now();
  while (!(await listed()).includes(fp)) {
    assert.ok(Date.now() - imported < 1000, 'the new image was not served within one second');
    await new Promise((r) => setTimeout(r, 20));
  }

  const artifact = `${server.base}/files/${fp}.tar.gz`;
  assert.equal((await fetchRaw(artifact, { ca })).status, 200);
  await wharfOk(data, ['image', 'delete', fp.slice(0, 12)]);
  const deleted = Date.now();
  while ((await listed()).includes(fp)) {
    assert.ok(Date.now() - deleted < 1000, 'the deleted image was still listed after one second');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal((await fetchRaw(artifact, { ca })).status, 200, 'still downloadable during the grace period');

  await new Promise((r) => setTimeout(r, 2200));
  assert.equal((await fetchRaw(artifact, { ca })).status, 404, 'gone once the grace period is over');
  const store = await openStore(await loadConfig(data, { gracePeriod: 2 }, {}), silentLogger);
  t.after(() => store.meta.close());
  const { removed } = await collectGarbage(store);
  assert.deepEqual(removed, [fp]);
  assert.equal(await store.blobs.size(fp), undefined);
  assert.ok(await store.blobs.size(first.sha256), 'files still in use are kept');
});
