/**
 * Usage statistics end to end, on a real server with two serving processes: what counts as a
 * download (a whole main file, a resumed one, an export, a direct import) and what does not (HEAD,
 * a partial read, the metadata tarball, a download cut short), then `wharf stats` and
 * `wharf image info` once the server has stopped (which writes the last counts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { buildMetadataTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, trustedClient, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';

interface StatsRow {
  fingerprint?: string;
  product?: string;
  day?: string;
  downloads: number;
  file: number;
  redirect: number;
  export: number;
}

test('downloads are counted per image and product once complete; wharf stats and image info show them', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Alpha', release: '1', architecture: 'amd64' } });
  const rootfs = await buildSquashfs(work, { seed: 'alpha', padMiB: 24 });
  const split = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, rootfs.path]));
  const unifiedFile = await buildUnified(work, { properties: { os: 'Beta', release: '2', architecture: 'amd64' } });
  const unified = fingerprintFrom(await wharfOk(data, ['image', 'import', unifiedFile.path, '--alias', 'beta']));
  const server = await serve(t, data, { processes: 2, http: true });
  const http = `http://127.0.0.1:${server.httpPort}`;
  // New connections, as LXD and Incus make them: both serving processes count.
  const get = (url: string, headers: Record<string, string> = {}, method = 'GET') => fetchRaw(url, { ca: server.tls.cert, method, headers: { connection: 'close', ...headers } });
  const rootfsPath = `/files/${rootfs.sha256}.squashfs`;

  for (let i = 0; i < 3; i++) assert.equal((await get(http + rootfsPath)).status, 200);
  assert.equal((await get(server.base + rootfsPath, { range: `bytes=1000-` })).status, 206, 'a resumed download that reaches the end counts');
  assert.equal((await get(http + rootfsPath, { range: 'bytes=0-99' })).status, 206, 'a partial read does not count');
  assert.equal((await get(http + rootfsPath, { range: 'bytes=-100' })).status, 206, 'a tail read does not count');
  assert.equal((await get(http + rootfsPath, {}, 'HEAD')).status, 200, 'HEAD does not count');
  assert.equal((await get(http + rootfsPath, { 'if-none-match': `"${rootfs.sha256}"` })).status, 304, 'a revalidation does not count');
  assert.equal((await get(`${http}/files/${meta.sha256}.tar.xz`)).status, 200, 'the metadata tarball alone does not count');

  // A client that hangs up after the first bytes: not a download.
  const socket = tlsConnect({ host: '127.0.0.1', port: server.httpsPort, rejectUnauthorized: false });
  await once(socket, 'secureConnect');
  socket.write(`GET ${rootfsPath} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  await once(socket, 'data');
  socket.destroy();

  const exported = await get(`${server.base}/1.0/images/${split}/export`);
  assert.equal(exported.status, 200);
  assert.equal((await get(`${server.base}/1.0/images/${split}/export`, {}, 'HEAD')).status, 200);
  const direct = await get(`${server.base}/direct/beta`);
  assert.equal(direct.status, 200, 'a direct import by URL');
  assert.equal((await get(`${server.base}/files/${unifiedFile.sha256}.tar.gz`)).status, 200, 'the unified tarball is the main file');

  await server.close(5_000); // drained as on SIGTERM, then the counts are written
  const byImage = JSON.parse(await wharfOk(data, ['stats', '--by', 'image', '--format', 'json'])) as StatsRow[];
  assert.deepEqual(byImage, [
    { fingerprint: split, product: 'alpha:1:amd64:default', downloads: 5, file: 4, redirect: 0, export: 1 },
    { fingerprint: unified, product: 'beta:2:amd64:default', downloads: 2, file: 2, redirect: 0, export: 0 },
  ]);
  const today = new Date().toISOString().slice(0, 10);
  assert.deepEqual(JSON.parse(await wharfOk(data, ['stats', '--by', 'day', '--since', '7d', '--format', 'json'])), [
    { day: today, downloads: 7, file: 6, redirect: 0, export: 1 },
  ]);
  assert.deepEqual(JSON.parse(await wharfOk(data, ['stats', '--since', '2999-01-01', '--format', 'json'])), []);
  const table = await wharfOk(data, ['stats']);
  assert.match(table, /\| PRODUCT\s+\| DOWNLOADS \| SERVED \| REDIRECTED \| EXPORTED \|/);
  assert.match(table, /\| alpha:1:amd64:default \| 5\s+\| 4\s+\| 0\s+\| 1\s+\|/);
  assert.match(await wharfOk(data, ['image', 'info', split.slice(0, 12)]), /^Downloads: 5 \(last 30 days: 5\)$/m);

  // The statistics outlive the image: a deleted version still counts for its product.
  await wharfOk(data, ['image', 'delete', unified]);
  assert.match(await wharfOk(data, ['stats', '--format', 'csv']), /^beta:2:amd64:default,2,2,0,0$/m);

  const bad = await wharf(data, ['stats', '--since', 'yesterday']);
  assert.equal(bad.code, 64);
  assert.match(bad.stderr, /Invalid --since "yesterday"/);
  assert.equal((await wharf(data, ['stats', '--by', 'colour'])).code, 64);
});

test('count_downloads: false counts nothing', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const unifiedFile = await buildUnified(work, { properties: { os: 'Gamma', release: '1', architecture: 'amd64' } });
  await wharfOk(data, ['image', 'import', unifiedFile.path]);
  await writeFile(join(data, 'config.yaml'), 'count_downloads: false\n');
  const server = await serve(t, data, { processes: 1 });
  const res = await fetchRaw(`${server.base}/files/${unifiedFile.sha256}.tar.gz`, { ca: server.tls.cert });
  assert.equal(res.status, 200);
  await server.close(5_000);
  assert.deepEqual(JSON.parse(await wharfOk(data, ['stats', '--format', 'json'])), []);
  await writeFile(join(data, 'config.yaml'), 'count_downloads: maybe\n');
  assert.equal((await wharf(data, ['serve'])).code, 78, 'a setting that is neither true nor false is a config error');
});

test("the catalogue's download counts name no private or deleted image", async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const image = async (os: string, serial: string, flags: string[] = []) => {
    const meta = await buildMetadataTarball(work, { name: `m-${os}-${serial}.tar.xz`, properties: { os, release: '1', architecture: 'amd64', serial } });
    const rootfs = await buildSquashfs(work, { name: `s-${os}-${serial}.squashfs`, seed: `${os}${serial}` });
    return { fingerprint: fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, rootfs.path, ...flags])), rootfs };
  };
  const shown = await image('Shown', '20250101');
  const sibling = await image('Shown', '20250201', ['--private']); // a private build of a public product
  const secret = await image('Secret', '20250101', ['--private']); // a product nobody may know of
  const gone = await image('Gone', '20250101');
  const admin = await trustedClient(work, data);
  const productKey = (os: string) => `${os.toLowerCase()}:1:amd64:default`;

  let server = await serve(t, data, { processes: 1 });
  const get = (path: string, who?: { cert: string; private: string }) => fetchRaw(server.base + path, { ca: server.tls.cert, ...(who ? { cert: who.cert, key: who.private } : {}) });
  assert.equal((await get(`/files/${shown.rootfs.sha256}.squashfs`)).status, 200);
  assert.equal((await get(`/files/${gone.rootfs.sha256}.squashfs`)).status, 200);
  assert.equal((await get(`/1.0/images/${sibling.fingerprint}/export`, admin)).status, 200, 'a trusted export of a private image');
  const minted = await fetchRaw(`${server.base}/1.0/images/${secret.fingerprint}/secret`, { ca: server.tls.cert, cert: admin.cert, key: admin.private, method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  const oneTime = (JSON.parse(minted.body.toString()) as { metadata: { metadata: { secret: string } } }).metadata.metadata.secret;
  assert.equal((await get(`/1.0/images/${secret.fingerprint}/export?secret=${oneTime}`)).status, 200, 'a one-time secret download');
  await server.close(5_000); // the counts are written
  await wharfOk(data, ['image', 'delete', gone.fingerprint]);
  const counted = JSON.parse(await wharfOk(data, ['stats', '--by', 'image', '--format', 'json'])) as StatsRow[];
  assert.equal(counted.length, 4, 'every download was counted (wharf stats is the operator\'s view)');

  server = await serve(t, data, { processes: 1 });
  const downloads = async () => {
    const answer = await get('/catalogue/v1/downloads.json');
    assert.equal(answer.status, 200);
    return { text: answer.body.toString(), doc: JSON.parse(answer.body.toString()) as { products: Record<string, { total: number; last_30_days: number[] }>; images: Record<string, number> } };
  };
  let { text, doc } = await downloads();
  for (const hidden of [sibling.fingerprint, secret.fingerprint, gone.fingerprint, productKey('Secret'), productKey('Gone')]) {
    assert.ok(!text.includes(hidden), `${hidden} is not named: ${text}`);
  }
  assert.deepEqual(doc.images, { [shown.fingerprint]: 1 });
  assert.deepEqual(Object.keys(doc.products), [productKey('Shown')]);
  assert.equal(doc.products[productKey('Shown')]!.total, 1, "the private build's export is not in its public product's count");
  assert.equal(doc.products[productKey('Shown')]!.last_30_days.at(-1), 1);

  // Made private: gone from the counts at once, not after the counts' 10 s refresh.
  await wharfOk(data, ['image', 'edit', shown.fingerprint], { stdin: 'public: false\n' });
  const deadline = Date.now() + 2_000;
  while ((({ text } = await downloads()), text.includes(shown.fingerprint)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  ({ doc } = await downloads());
  assert.deepEqual(doc, { ...doc, products: {}, images: {} });
});
