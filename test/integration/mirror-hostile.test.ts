/**
 * Mirror mode against what an attacker, or a sick origin, does: an origin that trickles its index
 * or says nothing at all, anonymous requests that would make the mirror download whole files,
 * ranges and empty files that could hand out unverified bytes, a second mirror on the same data
 * directory, a saved state that is not one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { capturingLogger, freePort, serve, tempDir, wharf, wharfBin } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { startSilentServer } from '../helpers/fault-server.ts';
import { fetchedFrom, mirrorOf, origin, sha256, squashfsOf, type Listed } from '../helpers/edge.ts';

const seconds = (since: number) => (Date.now() - since) / 1000;

/** Starts a GET and resolves once its headers and first bytes came; the caller may hang up then. */
function firstBytes(url: string, ca: string, localAddress?: string): Promise<{ status: number; hangUp(): void }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, ...(localAddress ? { localAddress } : {}) }, (res) => {
      const answer = { status: res.statusCode ?? 0, hangUp: () => req.destroy() };
      if (res.statusCode !== 200) return void (res.resume(), resolve(answer));
      res.once('data', () => resolve(answer));
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.end();
  });
}

test('a mirror serves from its saved index at once while the origin trickles, answers unknown paths in bounded time, and stops at once', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Held', padMiB: 1 }]);
  const data = join(work, 'mirror');
  const [held] = squashfsOf(up.items);
  const first = await serve(t, data, { mirrorOf: up.server.base, originCertificate: up.certificate });
  assert.equal((await fetchRaw(`${first.base}/${held!.path}`, { ca: first.tls.cert })).status, 200);
  await first.close();

  // The origin now sends its index one byte every 300 ms: never idle, never done.
  up.server.faults.set('streams/v1/index.json', 'trickle');
  let started = Date.now();
  const second = await serve(t, data, { mirrorOf: up.server.base, originCertificate: up.certificate, originTimeout: 3 });
  assert.ok(seconds(started) < 3, `listening after ${seconds(started)} s`);
  started = Date.now();
  const hit = await fetchRaw(`${second.base}/${held!.path}`, { ca: second.tls.cert });
  assert.equal(hit.status, 200);
  assert.equal(sha256(hit.body), held!.sha256);
  assert.ok(seconds(started) < 1, `a cached file took ${seconds(started)} s`);
  assert.equal((await fetchRaw(`${second.base}/readyz`, { ca: second.tls.cert })).status, 200, 'ready with the saved index');
  started = Date.now();
  assert.equal((await fetchRaw(`${second.base}/images/unknown/path`, { ca: second.tls.cert })).status, 404);
  assert.ok(seconds(started) < 7, `an unknown path was answered after ${seconds(started)} s`);
  // Every document has a deadline: the trickled read was given up (and is tried again later).
  const reads = () => fetchedFrom(up.server, 'streams/v1/index.json');
  const before = reads();
  await new Promise((r) => setTimeout(r, 4_000));
  assert.equal((await fetchRaw(`${second.base}/images/another/unknown`, { ca: second.tls.cert })).status, 404);
  assert.ok(reads() > before, 'a new read of the index began after the deadline ended the last');
  started = Date.now();
  await second.close(5_000);
  assert.ok(seconds(started) < 2, `stopping took ${seconds(started)} s with a read of the origin in flight`);
});

test('a black-holed origin: a mirror with nothing saved listens at once, is not ready, and says so within bounded time', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Any', padMiB: 0 }]);
  const silent = await startSilentServer();
  t.after(() => silent.close());
  let started = Date.now();
  const mirror = await serve(t, join(work, 'mirror'), { mirrorOf: `https://127.0.0.1:${silent.port}`, originCertificate: up.certificate });
  assert.ok(seconds(started) < 3, `listening after ${seconds(started)} s`);
  assert.equal((await fetchRaw(`${mirror.base}/readyz`, { ca: mirror.tls.cert })).status, 503);
  started = Date.now();
  const unknown = await fetchRaw(`${mirror.base}/${up.items[0]!.path}`, { ca: mirror.tls.cert });
  assert.ok(seconds(started) < 7, `answered after ${seconds(started)} s`);
  assert.equal(unknown.status, 502);
  assert.match(JSON.parse(unknown.body.toString()).error, /has not read its origin's index yet/);
  started = Date.now();
  await mirror.close(5_000);
  assert.ok(seconds(started) < 2, `stopping took ${seconds(started)} s`);
});

test('SIGTERM stops a mirror whose origin trickles, within shutdown_timeout', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Slow', padMiB: 0 }]);
  up.server.faults.set('streams/v1/index.json', 'trickle');
  const port = await freePort();
  const child = spawn(wharfBin, ['--data-dir', join(work, 'mirror'), 'serve', '--mirror-of', up.server.base, '--origin-certificate', up.certificate, '--https', `127.0.0.1:${port}`], {
    env: { ...process.env, WHARF_SHUTDOWN_TIMEOUT: '2', WHARF_SERVE_PROCESSES: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.after(() => void child.kill('SIGKILL'));
  let log = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (log += d));
  const listening = Date.now();
  while (!log.includes('"listening"')) {
    assert.ok(seconds(listening) < 15, `never listened:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // The origin's index is being trickled now.
  while (fetchedFrom(up.server, 'streams/v1/index.json') === 0) await new Promise((r) => setTimeout(r, 50));
  const stopping = Date.now();
  child.kill('SIGTERM');
  const [code] = (await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(() => r(['timeout']), 10_000))])) as [number | string];
  assert.equal(code, 0, `exit ${code} after ${seconds(stopping)} s:\n${log}`);
  assert.ok(seconds(stopping) < 4, `stopped after ${seconds(stopping)} s`);
});

test('a cheap anonymous request starts no download: HEAD and revalidations are answered from the index; fills are bounded per client and in all', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [1, 2, 3, 4].map((i) => ({ os: `Os${i}`, padMiB: 1 })));
  const files = squashfsOf(up.items);
  // Every file request waits at the origin until let go: fills stay in flight as long as needed.
  let letGo!: () => void;
  const gate = new Promise<void>((resolve) => (letGo = resolve));
  up.server.beforeEach = async (path) => {
    if (path.startsWith('files/') || path.startsWith('images/')) await gate;
  };
  const { mirror, get } = await mirrorOf(t, work, up, { cacheMaxFills: 2, cacheMaxFillsPerAddress: 1 });
  const fromOrigin = () => up.server.requests.filter((p) => !p.startsWith('streams/'));

  const head = await fetchRaw(`${mirror.base}/${files[0]!.path}`, { ca: mirror.tls.cert, method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(files[0]!.size));
  assert.equal(head.headers.etag, `"${files[0]!.sha256}"`);
  assert.equal((await get(files[0]!.path, { 'if-none-match': `"${files[0]!.sha256}"` })).status, 304);
  assert.equal((await get(files[0]!.path, { range: `bytes=${files[0]!.size}-` })).status, 416);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(fromOrigin(), [], 'no file was asked of the origin');

  // One client address starts one fill at a time; hanging up does not give its share back.
  const ask = (file: Listed, from: string) => fetchRaw(`${mirror.base}/${file.path}`, { ca: mirror.tls.cert, localAddress: from });
  const firstFill = ask(files[0]!, '127.0.0.1');
  while (fromOrigin().length < 1) await new Promise((r) => setTimeout(r, 20));
  const refused = await ask(files[1]!, '127.0.0.1');
  assert.equal(refused.status, 503);
  assert.equal(refused.headers['retry-after'], '5');
  assert.match(JSON.parse(refused.body.toString()).error, /started 1 downloads from the origin/);
  // Another client may; a third fill is one too many for the whole mirror.
  const secondFill = ask(files[1]!, '127.0.0.2');
  while (fromOrigin().length < 2) await new Promise((r) => setTimeout(r, 20));
  const tooMany = await ask(files[2]!, '127.0.0.3');
  assert.equal(tooMany.status, 503);
  assert.match(JSON.parse(tooMany.body.toString()).error, /fetching 2 files from its origin/);
  // Joining a fill in flight costs the origin nothing: always allowed.
  const joined = ask(files[0]!, '127.0.0.3');
  assert.equal(fromOrigin().length, 2);

  letGo();
  for (const [answer, file] of [[await firstFill, files[0]!], [await secondFill, files[1]!], [await joined, files[0]!]] as const) {
    assert.equal(answer.status, 200);
    assert.equal(sha256(answer.body), file.sha256);
  }
  assert.equal((await ask(files[2]!, '127.0.0.1')).status, 200, 'once the fills are done, the client may start another');
  assert.deepEqual(fromOrigin().sort(), files.slice(0, 3).map((f) => f.path).sort(), 'each file fetched once');
});

test('the cache never holds more than cache_max_size, fills in flight included; a file larger than the cache is refused', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'A', padMiB: 2 }, { os: 'B', padMiB: 2 }, { os: 'C', padMiB: 2 }, { os: 'Huge', padMiB: 6 }]);
  const [a, b, c, huge] = squashfsOf(up.items).sort((x, y) => x.size - y.size);
  let letGo!: () => void;
  let gate = new Promise<void>((resolve) => (letGo = resolve));
  up.server.beforeEach = async (path) => {
    if (path.startsWith('files/') || path.startsWith('images/')) await gate;
  };
  // Room for two of the small files, not three, and never for the huge one.
  const room = a!.size + b!.size + 4096;
  assert.ok(c!.size > 4096 && huge!.size > room);
  const { data, mirror } = await mirrorOf(t, work, up, { cacheMaxSize: room, cacheMaxFills: 10, cacheMaxFillsPerAddress: 10 });
  const ask = (file: Listed) => fetchRaw(`${mirror.base}/${file.path}`, { ca: mirror.tls.cert });
  const fromOrigin = () => up.server.requests.filter((p) => !p.startsWith('streams/'));

  const tooLarge = await ask(huge!);
  assert.equal(tooLarge.status, 507);
  assert.match(JSON.parse(tooLarge.body.toString()).error, /larger than this mirror's whole cache/);
  // Two fills in flight take the whole cache: a third cannot start until one is stored.
  const filling = [ask(a!), ask(b!)];
  while (fromOrigin().length < 2) await new Promise((r) => setTimeout(r, 20));
  const noRoom = await ask(c!);
  assert.equal(noRoom.status, 503);
  assert.match(JSON.parse(noRoom.body.toString()).error, /cache is full of files being read or fetched/);
  letGo();
  for (const answer of await Promise.all(filling)) assert.equal(answer.status, 200);
  // Stored now, not being read: the least recently used makes room for the third.
  await new Promise((r) => setTimeout(r, 100));
  const third = await ask(c!);
  assert.equal(third.status, 200);
  assert.equal(sha256(third.body), c!.sha256);
  assert.deepEqual(fromOrigin().sort(), [a!, b!, c!].map((f) => f.path).sort(), 'the huge file was never asked for');
  gate = Promise.resolve();
  let total = 0;
  for (const name of await readdir(join(data, 'cache', 'blobs', 'sha256'), { recursive: true })) {
    if (/^[0-9a-f]{2}\/[0-9a-f]{64}$/.test(name)) total += (await readFile(join(data, 'cache', 'blobs', 'sha256', name))).length;
  }
  assert.ok(total <= room, `${total} bytes cached, ${room} allowed`);
});

test('a range read during a fill, and an empty file, are never answered whole with bytes that were not verified', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Tampered', padMiB: 2 }, { os: 'Fine', padMiB: 2 }]);
  const [tampered, fine] = squashfsOf(up.items);
  // Two empty files in the origin's index: one listed with the empty sha256, one with another.
  const emptySha = sha256(Buffer.alloc(0));
  const productsPath = join(up.tree, 'streams/v1/images.json');
  const products = JSON.parse(await readFile(productsPath, 'utf8')) as { products: Record<string, { versions: Record<string, { items: Record<string, unknown> }> }> };
  const version = Object.values(Object.values(products.products)[0]!.versions)[0]!;
  version.items['empty-ok'] = { ftype: 'empty', path: 'images/empty-ok', size: 0, sha256: emptySha };
  version.items['empty-bad'] = { ftype: 'empty', path: 'images/empty-bad', size: 0, sha256: fine!.sha256 };
  await writeFile(productsPath, JSON.stringify(products));
  const { get } = await mirrorOf(t, work, up);

  const ok = await get('images/empty-ok');
  assert.equal(ok.status, 200);
  assert.equal(ok.body.length, 0);
  assert.equal(ok.headers.etag, `"${emptySha}"`);
  const bad = await get('images/empty-bad');
  assert.equal(bad.status, 502);
  assert.match(JSON.parse(bad.body.toString()).error, /as empty, with the sha256 of something else/);
  assert.equal(up.server.requests.filter((p) => p.startsWith('images/empty')).length, 0, 'nothing to fetch for an empty file');

  // A flipped byte mid-file: a range before it must not come back complete while unverified.
  up.server.faults.set(tampered!.path, 'corrupt');
  const cut = await get(tampered!.path, { range: 'bytes=0-99' }).catch((err: Error) => err);
  if (!(cut instanceof Error)) assert.ok(cut.status !== 206 || cut.body.length < 100, `a range of an unverified fill came back whole (${cut.status}, ${cut.body.length} bytes)`);
  // A range of a good file during its fill: whole, and right.
  up.server.faults.set(fine!.path, 'slow');
  const part = await get(fine!.path, { range: 'bytes=1000-1999' });
  assert.equal(part.status, 206);
  assert.deepEqual(part.body, (await readFile(join(up.tree, fine!.path))).subarray(1000, 2000));
});

test('a second mirror on the same data directory fails to bind and leaves the running one and its downloads alone', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Long', padMiB: 4 }]);
  const [long] = squashfsOf(up.items);
  up.server.faults.set(long!.path, 'slow');
  const { data, mirror } = await mirrorOf(t, work, up);
  const download = fetchRaw(`${mirror.base}/${long!.path}`, { ca: mirror.tls.cert });
  while ((await readdir(join(data, 'cache', 'blobs', 'staging'))).length === 0) await new Promise((r) => setTimeout(r, 10));
  const second = await wharf(data, ['serve', '--mirror-of', up.server.base, '--origin-certificate', up.certificate, '--https', `127.0.0.1:${mirror.httpsPort}`], { timeoutMs: 30_000 });
  assert.notEqual(second.code, 0, 'the port is taken');
  const answer = await download;
  assert.equal(answer.status, 200);
  assert.equal(sha256(answer.body), long!.sha256, 'the running mirror finished its download');
  const again = await fetchRaw(`${mirror.base}/${long!.path}`, { ca: mirror.tls.cert });
  assert.equal(again.headers['x-wharf-cache'], 'HIT');
});

test('a saved origin index that is not one is set aside with a warning, and the origin is read afresh', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Fresh', padMiB: 0 }]);
  const data = join(work, 'mirror');
  const [fresh] = squashfsOf(up.items);
  for (const [n, wrong] of [`{"origin": "${up.server.base}", "checkedAt": 1, "files": [1, 2], "dropped": {}}`, '{"files": {"a": 5}}', 'null', '{not json'].entries()) {
    const dir = `${data}-${n}`;
    await (await import('node:fs/promises')).mkdir(join(dir, 'cache'), { recursive: true });
    await writeFile(join(dir, 'cache', 'origin-index.json'), wrong);
    const { log, records } = capturingLogger();
    const mirror = await serve(t, dir, { mirrorOf: up.server.base, originCertificate: up.certificate, log });
    const answer = await fetchRaw(`${mirror.base}/${fresh!.path}`, { ca: mirror.tls.cert });
    assert.equal(answer.status, 200, wrong);
    assert.ok(records.some((r) => /saved origin index could not be read/.test(String(r.msg))), wrong);
    assert.ok((await readdir(join(dir, 'cache'))).some((name) => name.startsWith('origin-index.json.damaged-')), 'kept for a look');
    await mirror.close();
  }
});

test('a mirror re-hashes its cache by itself: a file damaged on disk is dropped, no longer reported held, and fetched anew', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Rotting', padMiB: 1 }]);
  const [file] = squashfsOf(up.items);
  const { data, mirror, get } = await mirrorOf(t, work, up, { cacheRecheck: 1 });
  assert.equal((await get(file!.path)).status, 200);
  const held = async () => (JSON.parse((await get('.wharf/held')).body.toString()) as { held: string[] }).held;
  assert.deepEqual(await held(), [file!.sha256]);
  // A bad sector, or a hand: one byte of the cached copy changes.
  const stored = join(data, 'cache', 'blobs', 'sha256', file!.sha256.slice(0, 2), file!.sha256);
  const bytes = await readFile(stored);
  bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
  await writeFile(stored, bytes);
  const damagedAt = Date.now();
  while ((await held()).length > 0) {
    assert.ok(seconds(damagedAt) < 10, 'the damaged file is still reported held after 10 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  const again = await get(file!.path);
  assert.equal(again.headers['x-wharf-cache'], 'MISS');
  assert.equal(sha256(again.body), file!.sha256);
  assert.equal(fetchedFrom(up.server, file!.path), 2);
  const metrics = (await fetchRaw(`${mirror.base}/metrics`, { ca: mirror.tls.cert })).body.toString();
  assert.match(metrics, /^wharf_cache_damaged_total 1$/m);
});
