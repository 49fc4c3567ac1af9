/** The simplestreams server over real HTTPS (and plain HTTP on the same port). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createServer, type AddressInfo } from 'node:net';
import { buildMetadataTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { capturingLogger, fingerprintFrom, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
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
  // What an index answer carries (answered before the framework, bench/images-json-floor.ts):
  // the same as any other answer of wharf's, and what browsers and caches need.
  assert.equal(index.headers.vary, 'user-agent, accept-encoding');
  assert.equal(index.headers['access-control-allow-origin'], '*');
  assert.equal(index.headers['cache-control'], 'no-cache');
  assert.match(String(index.headers['x-request-id']), /^[0-9a-f]{16}$/);
  assert.equal(index.headers['content-length'], String(index.body.length));
  const indexHead = await get('/streams/v1/index.json', {}, 'HEAD');
  assert.equal(indexHead.status, 200);
  assert.equal(indexHead.headers['content-length'], String(index.body.length));
  assert.equal(indexHead.body.length, 0);
  assert.equal((await get('/streams/v1/index.json?cache=bust')).body.toString(), index.body.toString(), 'a query string changes nothing');
  assert.equal((await get('/streams/v1/nothing.json')).status, 404);
  assert.equal((await get('/streams/v1/index.json', {}, 'POST')).status, 404);
  const plainIndex = await fetchRaw(`http://127.0.0.1:${server.httpsPort}/streams/v1/index.json`);
  assert.equal(plainIndex.status, 301, 'plain HTTP is sent to HTTPS for the index');

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

test('an image made private is not downloadable from that moment, nor after it is deleted', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Hidden', release: '1', architecture: 'amd64' } });
  const rootfs = await buildSquashfs(work, { seed: 'hidden' });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, rootfs.path]));
  const server = await serve(t, data, { gracePeriod: 3600 });
  const files = [`${server.base}/files/${rootfs.sha256}.squashfs`, `${server.base}/files/${meta.sha256}.tar.xz`];
  for (const file of files) assert.equal((await fetchRaw(file, { ca: server.tls.cert })).status, 200);

  await wharfOk(data, ['image', 'edit', fp], { stdin: 'public: false\n' });
  const changed = Date.now();
  // Every serving process (two here, each with its own poll, reached by new connections at
  // random) refuses them within a second, grace period or not: eight refusals in a row.
  for (const file of files) {
    for (let refused = 0; refused < 8; ) {
      const status = (await fetchRaw(file, { ca: server.tls.cert, headers: { connection: 'close' } })).status;
      refused = status === 404 ? refused + 1 : 0;
      assert.ok(refused > 0 || Date.now() - changed < 1000, `${file} still downloadable a second after the image was made private`);
    }
  }
  // Deleting it afterwards does not bring its files back for a grace period.
  await wharfOk(data, ['image', 'delete', fp]);
  await new Promise((r) => setTimeout(r, 300));
  for (const file of files) for (let i = 0; i < 4; i++) assert.equal((await fetchRaw(file, { ca: server.tls.cert, headers: { connection: 'close' } })).status, 404);
});

test('If-None-Match lists; one access-log line per request, with the id sent as X-Request-Id', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const image = await buildUnified(work, { seed: 'logged' });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', image.path]));
  const { log, records } = capturingLogger();
  // One serving process: the access log of another would be written by that process.
  const server = await serve(t, data, { processes: 1, log });
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => fetchRaw(server.base + path, { ca: server.tls.cert, headers, method });

  const file = `/files/${fp}.tar.gz`;
  for (const path of ['/streams/v1/index.json', file]) {
    const tag = String((await get(path)).headers.etag);
    for (const header of [tag, `W/${tag}`, `"other", ${tag}`, `W/"other",W/${tag}`, '*']) {
      assert.equal((await get(path, { 'if-none-match': header })).status, 304, `${path}: ${header}`);
    }
    for (const header of ['"other"', `"other" ${tag}`, tag.slice(1)]) assert.equal((await get(path, { 'if-none-match': header })).status, 200, `${path}: ${header}`);
  }

  const secret = 'c0ffee'.repeat(10);
  const answers = [
    { what: 'lxd', r: await get(`/1.0/images/${fp}?secret=${secret}`), status: 200 },
    { what: 'missing', r: await get('/nothing/here'), status: 404 },
    { what: 'head', r: await get(file, {}, 'HEAD'), status: 200 },
    { what: 'range', r: await get(file, { range: 'bytes=0-99' }), status: 206 },
    { what: 'unsatisfiable', r: await get(file, { range: `bytes=${image.size}-` }), status: 416 },
  ];
  const ids = answers.map((a) => String(a.r.headers['x-request-id']));
  for (const id of ids) assert.match(id, /^[0-9a-f]{16}$/);
  assert.equal(new Set(ids).size, ids.length, 'one id per request');
  // The line is written once the response closed on the server's side.
  const linesOf = (id: string) => records.filter((r) => r.msg === 'request' && r.id === id);
  for (const started = Date.now(); !ids.every((id) => linesOf(id).length); ) {
    assert.ok(Date.now() - started < 2000, 'no access-log line');
    await new Promise((r) => setTimeout(r, 20));
  }
  for (const [i, { what, r, status }] of answers.entries()) {
    assert.equal(r.status, status, what);
    const lines = linesOf(ids[i]!);
    assert.equal(lines.length, 1, `${what}: one line`);
    const line = lines[0]!;
    assert.equal(line.level, 'info', what);
    assert.equal(line.status, status, what);
    assert.equal(line.bytes, r.body.length, what);
    assert.equal(typeof line.ms, 'number', what);
    assert.match(String(line.client), /127\.0\.0\.1/, what);
  }
  const lxd = linesOf(ids[0]!)[0]!;
  assert.equal(lxd.method, 'GET');
  assert.equal(lxd.path, `/1.0/images/${fp}?secret=REDACTED`);
  assert.ok(!JSON.stringify(records).includes(secret), 'a secret is never logged');
  assert.equal(linesOf(ids[2]!)[0]!.method, 'HEAD');
  assert.equal(linesOf(ids[3]!)[0]!.bytes, 100);
  // Errors carry the id too, and none of the headers of the file they are not.
  const missing = answers[1]!.r;
  assert.deepEqual(JSON.parse(missing.body.toString()), { error: 'not found' });
  const unsatisfiable = answers[4]!.r;
  assert.equal(unsatisfiable.headers['content-range'], `bytes */${image.size}`);
  assert.equal(unsatisfiable.headers.etag, undefined);
});

test('an address wharf cannot listen on is a config error (exit 78) that says why', async (t) => {
  const work = await tempDir(t);
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const port = (taken.address() as AddressInfo).port;
  for (const [args, reason] of [
    [['--https', `127.0.0.1:${port}`], /Cannot listen on 127\.0\.0\.1:\d+: it is in use by another program/],
    [['--https', '127.0.0.1:0', '--http', `127.0.0.1:${port}`], /Cannot listen on 127\.0\.0\.1:\d+: it is in use by another program/],
    [['--https', '192.0.2.77:8443'], /Cannot listen on 192\.0\.2\.77:8443: it is not an address of this machine/],
    [['--https', 'no-such-host.invalid:8443'], /Cannot listen on no-such-host\.invalid:8443: it does not resolve to an address/],
  ] as const) {
    const result = await wharf(join(work, 'data'), ['serve', ...args], { timeoutMs: 30_000 });
    assert.equal(result.code, 78, `${args.join(' ')}: exit 78 (config)\n${result.stderr}`);
    assert.match(result.stderr, reason);
  }
});

test('a data directory wharf cannot use is a config error (exit 78) naming it, for the CLI and serve alike', async (t) => {
  const work = await tempDir(t);
  const file = join(work, 'a-file');
  await writeFile(file, 'not a directory');
  // /proc takes no new directories; a file cannot hold one.
  for (const dir of ['/proc/wharf-data-test', join(file, 'data')]) {
    for (const args of [['image', 'list'], ['serve', '--https', '127.0.0.1:0']]) {
      const result = await wharf(dir, args, { timeoutMs: 30_000 });
      assert.equal(result.code, 78, `${dir} ${args[0]}: exit 78\n${result.stderr}`);
      assert.ok(result.stderr.includes(dir), `${dir} ${args[0]}: the message names the directory\n${result.stderr}`);
    }
  }
});
