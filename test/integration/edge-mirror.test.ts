/**
 * Mirror mode (`serve --mirror-of`): a verified pull-through cache of an origin. The origin here
 * is a tree exported by wharf, served over HTTPS by a server that can misbehave on demand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { once } from 'node:events';
import { serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { fetchedFrom, mirrorOf, origin, sha256, squashfsOf, type Listed } from '../helpers/edge.ts';
import { filesUnder } from '../helpers/store-state.ts';

test('a mirror serves the origin files by their paths, verified, fetched once, and redirects index requests to the origin', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Alpha', padMiB: 1 }, { os: 'Beta', padMiB: 1 }]);
  const { data, mirror, get } = await mirrorOf(t, work, up);

  const index = await get('streams/v1/index.json');
  assert.equal(index.status, 302);
  assert.equal(index.headers.location, `${up.server.base}/streams/v1/index.json`);
  const images = await get('streams/v1/images.json?x=1');
  assert.equal(images.headers.location, `${up.server.base}/streams/v1/images.json?x=1`);
  // A visitor's browser is sent to the origin's catalogue page, as the index is.
  const page = await get('');
  assert.equal(page.status, 302);
  assert.equal(page.headers.location, `${up.server.base}/`);
  assert.equal((await get('catalogue/v1/products.json')).headers.location, `${up.server.base}/catalogue/v1/products.json`);

  const seen = new Set<string>();
  for (const item of up.items) {
    const first = await get(item.path);
    assert.equal(first.status, 200, item.path);
    // Paths naming the same bytes (one metadata file under both vocabularies) share one copy.
    assert.equal(first.headers['x-wharf-cache'], seen.has(item.sha256) ? 'HIT' : 'MISS');
    seen.add(item.sha256);
    assert.equal(sha256(first.body), item.sha256);
    assert.equal(first.headers.etag, `"${item.sha256}"`);
    const again = await get(item.path);
    assert.equal(again.headers['x-wharf-cache'], 'HIT');
    assert.equal(sha256(again.body), item.sha256);
    assert.ok(fetchedFrom(up.server, item.path) <= 1, `${item.path} fetched from the origin at most once`);
  }
  // Plain HTTP serves artifacts too (clients try it first), and ranges and HEAD work on hits.
  const item = squashfsOf(up.items)[0]!;
  const plain = await fetchRaw(`http://127.0.0.1:${mirror.httpPort}/${item.path}`);
  assert.equal(sha256(plain.body), item.sha256);
  const part = await get(item.path, { range: 'bytes=10-19' });
  assert.equal(part.status, 206);
  assert.equal(part.headers['content-range'], `bytes 10-19/${item.size}`);
  const head = await fetchRaw(`${mirror.base}/${item.path}`, { ca: mirror.tls.cert, method: 'HEAD' });
  assert.equal(head.headers['content-length'], String(item.size));

  // Unknown and escaping paths: 404, and nothing is asked of the origin for them.
  const before = up.server.requests.length;
  for (const path of ['images/nothing/here', '..%2f..%2fetc%2fpasswd', '%2e%2e/%2e%2e/etc/passwd']) {
    assert.equal((await get(path)).status, 404, path);
  }
  assert.ok(up.server.requests.slice(before).every((p) => p.startsWith('streams/')), `only the index was read again: ${up.server.requests.slice(before)}`);

  // Each cached file is one blob named by its sha256.
  const blobs = (await filesUnder(join(data, 'cache', 'blobs', 'sha256'))).map((f) => f.split('/').pop());
  assert.deepEqual(blobs.sort(), [...new Set(up.items.map((i) => i.sha256))].sort());
});

/** A GET that notes when its headers came, and resolves with the body (or rejects when cut off). */
function timedGet(url: string, ca: string, started: number): Promise<{ headersAfterMs: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca }, (res) => {
      const headersAfterMs = Date.now() - started;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ headersAfterMs, body: Buffer.concat(chunks) }));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('cut off')));
    });
    req.on('error', reject);
    req.end();
  });
}

test('concurrent clients of a cold mirror share one upstream fetch and get their headers at once', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Big', padMiB: 4 }]);
  const { mirror, get } = await mirrorOf(t, work, up);
  const item = squashfsOf(up.items)[0]!;
  up.server.faults.set(item.path, 'slow');

  const started = Date.now();
  const answers = await Promise.all(Array.from({ length: 12 }, () => timedGet(`${mirror.base}/${item.path}`, mirror.tls.cert, started)));
  const total = Date.now() - started;
  for (const a of answers) assert.equal(sha256(a.body), item.sha256);
  assert.equal(fetchedFrom(up.server, item.path), 1, 'one upstream fetch for every client');
  // The slow upstream takes size / 64 KiB * 20 ms; every client had its headers long before.
  const latest = Math.max(...answers.map((a) => a.headersAfterMs));
  assert.ok(latest < total / 2, `headers after ${latest} ms, all done after ${total} ms`);
  assert.equal((await get(item.path)).headers['x-wharf-cache'], 'HIT');
});

test('a client that hangs up does not abort the fill; a tampered upstream file reaches no client whole and is not kept', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Good', padMiB: 3 }, { os: 'Evil', padMiB: 3 }]);
  const { data, mirror, get } = await mirrorOf(t, work, up);
  const [good, evil] = squashfsOf(up.items);

  // The first reader leaves after its first bytes; the fill goes on and is kept.
  up.server.faults.set(good!.path, 'slow');
  await new Promise<void>((resolve, reject) => {
    const req = httpsRequest(`${mirror.base}/${good!.path}`, { ca: mirror.tls.cert }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.end();
  });
  for (let i = 0; i < 100 && (await get(good!.path)).headers['x-wharf-cache'] !== 'HIT'; i++) await new Promise((r) => setTimeout(r, 100));
  const kept = await get(good!.path);
  assert.equal(kept.headers['x-wharf-cache'], 'HIT');
  assert.equal(sha256(kept.body), good!.sha256);
  assert.equal(fetchedFrom(up.server, good!.path), 1);

  // A flipped byte: every reader is cut off short, nothing is cached, the next request tries again.
  up.server.faults.set(evil!.path, 'corrupt');
  const started = Date.now();
  const outcomes = await Promise.allSettled([1, 2, 3].map(() => timedGet(`${mirror.base}/${evil!.path}`, mirror.tls.cert, started)));
  for (const o of outcomes) {
    if (o.status === 'fulfilled') assert.ok(o.value.body.length < evil!.size, 'a tampered file never arrives whole');
  }
  const cached = (await filesUnder(join(data, 'cache', 'blobs', 'sha256'))).map((f) => f.split('/').pop());
  assert.ok(!cached.includes(evil!.sha256), 'the tampered file is not kept');
  assert.deepEqual(await readdir(join(data, 'cache', 'blobs', 'staging')), [], 'no staging copy is left');
  up.server.faults.delete(evil!.path);
  const fixed = await get(evil!.path);
  assert.equal(fixed.status, 200);
  assert.equal(sha256(fixed.body), evil!.sha256);
  assert.equal(fetchedFrom(up.server, evil!.path), 2);
});

test('with the origin down, cached files are still served, also after a restart; unknown ones fail as unavailable', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Kept', padMiB: 1 }, { os: 'Never', padMiB: 1 }]);
  const data = join(work, 'mirror');
  const [kept, never] = squashfsOf(up.items);
  const first = await serve(t, data, { mirrorOf: up.server.base, originCertificate: up.certificate });
  assert.equal((await fetchRaw(`${first.base}/${kept!.path}`, { ca: first.tls.cert })).status, 200);
  await first.close();

  await up.server.close();
  const second = await serve(t, data, { mirrorOf: up.server.base, originCertificate: up.certificate });
  const hit = await fetchRaw(`${second.base}/${kept!.path}`, { ca: second.tls.cert });
  assert.equal(hit.status, 200);
  assert.equal(hit.headers['x-wharf-cache'], 'HIT');
  assert.equal(sha256(hit.body), kept!.sha256);
  const miss = await fetchRaw(`${second.base}/${never!.path}`, { ca: second.tls.cert });
  assert.equal(miss.status, 502, 'a file the mirror does not hold cannot be served');
  assert.match(JSON.parse(miss.body.toString()).error, /Cannot reach/);
});

test('a full cache evicts the least recently used file and serves on without error', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'One', padMiB: 2 }, { os: 'Two', padMiB: 2 }, { os: 'Three', padMiB: 2 }]);
  const [one, two, three] = squashfsOf(up.items);
  // Room for two of the three root filesystems.
  const room = one!.size + two!.size + 1024;
  const { data, get } = await mirrorOf(t, work, up, { cacheMaxSize: room });
  assert.equal((await get(one!.path)).status, 200);
  assert.equal((await get(two!.path)).status, 200);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal((await get(one!.path)).headers['x-wharf-cache'], 'HIT'); // one is now the most recent
  const third = await get(three!.path);
  assert.equal(sha256(third.body), three!.sha256);
  let cached: string[] = [];
  for (let i = 0; i < 50; i++) {
    cached = (await filesUnder(join(data, 'cache', 'blobs', 'sha256'))).map((f) => f.split('/').pop()!);
    if (!cached.includes(two!.sha256)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(cached.includes(one!.sha256) && cached.includes(three!.sha256), 'the recently used stay');
  assert.ok(!cached.includes(two!.sha256), 'the least recently used went');
  const back = await get(two!.path);
  assert.equal(back.headers['x-wharf-cache'], 'MISS');
  assert.equal(sha256(back.body), two!.sha256);
});

test('wharf cache lists, verifies and purges what a serving mirror holds', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Listed', padMiB: 1 }, { os: 'Damaged', padMiB: 1 }]);
  const { data, get } = await mirrorOf(t, work, up);
  const [listed, damaged] = squashfsOf(up.items);
  for (const item of [listed!, damaged!]) assert.equal((await get(item.path)).status, 200);
  const cached = JSON.parse(await wharfOk(data, ['cache', 'list', '--format', 'json'])) as { sha256: string; size: number; paths: string[] }[];
  const entry = cached.find((c) => c.sha256 === listed!.sha256);
  assert.deepEqual(entry?.paths, [listed!.path]);
  assert.equal(entry?.size, listed!.size);
  assert.match(await wharfOk(data, ['cache', 'list']), new RegExp(listed!.sha256.slice(0, 12)));

  // A byte flipped on disk: verify says so, exits non-zero, removes the file; the mirror fetches it again.
  const file = join(data, 'cache', 'blobs', 'sha256', damaged!.sha256.slice(0, 2), damaged!.sha256);
  const bytes = await readFile(file);
  bytes[100] = bytes[100]! ^ 1;
  await writeFile(file, bytes);
  const verify = await wharf(data, ['cache', 'verify']);
  assert.equal(verify.code, 65);
  assert.match(verify.stdout, new RegExp(`${damaged!.sha256}: CORRUPT, removed`));
  assert.match(verify.stdout, new RegExp(`${listed!.sha256}: ok`));
  const refetched = await get(damaged!.path);
  assert.equal(refetched.headers['x-wharf-cache'], 'MISS');
  assert.equal(sha256(refetched.body), damaged!.sha256);

  // Purge by path, then everything; an unknown name is an error that removes nothing.
  assert.equal((await wharf(data, ['cache', 'purge', 'images/none'])).code, 66);
  assert.match(await wharfOk(data, ['cache', 'purge', listed!.path]), /1 cached file removed/);
  assert.equal((await get(listed!.path)).headers['x-wharf-cache'], 'MISS');
  await wharfOk(data, ['cache', 'purge']);
  assert.deepEqual(await filesUnder(join(data, 'cache', 'blobs', 'sha256')), []);
  assert.equal(sha256((await get(listed!.path)).body), listed!.sha256);
});

test('a file the origin stops listing is served for the grace period, then forgotten and evicted', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Old', padMiB: 1 }, { os: 'Stays', padMiB: 1 }]);
  const [old] = squashfsOf(up.items);
  const { data, get } = await mirrorOf(t, work, up, { originRefresh: 1, gracePeriod: 3 });
  assert.equal((await get(old!.path)).status, 200);
  // The origin drops the image: its next index no longer lists the file.
  await wharfOk(join(work, 'source'), ['image', 'delete', 'old']);
  await rm(join(work, 'tree'), { recursive: true });
  await wharfOk(join(work, 'source'), ['tree', 'export', join(work, 'tree')]);
  const indexReads = () => up.server.requests.filter((p) => p === 'streams/v1/images.json').length;
  const readsBefore = indexReads();
  while (indexReads() < readsBefore + 1) await new Promise((r) => setTimeout(r, 100));
  const withinGrace = await get(old!.path);
  assert.equal(withinGrace.status, 200, 'still served within the grace period');
  assert.equal(sha256(withinGrace.body), old!.sha256);
  await new Promise((r) => setTimeout(r, 3500));
  assert.equal((await get(old!.path)).status, 404, 'forgotten after it');
  // The cache lets it go at its next sweep (here: asked for by hand through another fill's end).
  const stays = squashfsOf(up.items)[1]!;
  assert.equal((await get(stays.path)).status, 200);
  let cached: string[] = [];
  for (let i = 0; i < 50; i++) {
    cached = (await filesUnder(join(data, 'cache', 'blobs', 'sha256'))).map((f) => f.split('/').pop()!);
    if (!cached.includes(old!.sha256)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(!cached.includes(old!.sha256), 'no longer kept');
});

test('a hostile origin: truncated files, an index naming paths outside it, a broken index; none of it is kept or followed', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Cut', padMiB: 2 }, { os: 'Fine', padMiB: 1 }]);
  const [cut, fine] = squashfsOf(up.items);
  // The products file also lists files outside the origin: another host, and a climb out of it.
  const products = JSON.parse(await readFile(join(up.tree, 'streams/v1/images.json'), 'utf8'));
  const someVersion = Object.values(Object.values(products.products as Record<string, { versions: Record<string, { items: Record<string, unknown> }> }>)[0]!.versions)[0]!;
  someVersion.items['elsewhere'] = { ftype: 'squashfs', path: 'https://127.0.0.1:9/steal', sha256: fine!.sha256, size: fine!.size };
  someVersion.items['climb'] = { ftype: 'squashfs', path: '../../../../etc/passwd', sha256: fine!.sha256, size: fine!.size };
  await writeFile(join(up.tree, 'streams/v1/images.json'), JSON.stringify(products));
  const { data, get } = await mirrorOf(t, work, up, { originRefresh: 1 });

  for (const path of ['https://127.0.0.1:9/steal', 'etc/passwd', '../../../../etc/passwd']) assert.equal((await get(path)).status, 404, path);
  assert.ok(!up.server.requests.some((p) => p.includes('passwd') || p.includes('steal')), 'nothing outside the origin was asked for');

  // A connection dropped halfway: the client gets a short body, the file is not kept.
  up.server.faults.set(cut!.path, 'truncate');
  const short = await get(cut!.path).catch(() => undefined);
  assert.ok(!short || short.body.length < cut!.size, 'a truncated file never arrives whole');
  const kept = (await filesUnder(join(data, 'cache', 'blobs', 'sha256'))).map((f) => f.split('/').pop());
  assert.ok(!kept.includes(cut!.sha256));

  // The origin's index turns to garbage: the mirror keeps what it knew and goes on serving.
  assert.equal((await get(fine!.path)).status, 200);
  await writeFile(join(up.tree, 'streams/v1/images.json'), '{"products": ');
  const reads = () => up.server.requests.filter((p) => p === 'streams/v1/images.json').length;
  const before = reads();
  while (reads() < before + 1) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 200));
  const still = await get(fine!.path);
  assert.equal(still.status, 200);
  assert.equal(sha256(still.body), fine!.sha256);
  up.server.faults.delete(cut!.path);
  assert.equal(sha256((await get(cut!.path)).body), cut!.sha256, 'a file the old index listed is still fetched and checked against it');
});

test('a mirror counts the complete downloads it serves, per image and product, for wharf stats', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Counted', padMiB: 1 }]);
  const { data, mirror, get } = await mirrorOf(t, work, up);
  const doc = JSON.parse(await readFile(join(up.tree, 'streams/v1/images.json'), 'utf8')) as {
    products: Record<string, { versions: Record<string, { items: Record<string, Listed & Record<string, unknown>> }> }>;
  };
  const [productKey, product] = Object.entries(doc.products)[0]!;
  const items = Object.values(product.versions)[0]!.items;
  const root = Object.values(items).find((i) => i.ftype === 'squashfs')!;
  const meta = Object.values(items).find((i) => i.ftype === 'lxd.tar.xz')!;

  // Counted: the whole rootfs, first from the fill, then from the cache.
  for (const kind of ['MISS', 'HIT']) assert.equal((await get(root.path)).headers['x-wharf-cache'], kind);
  // Not counted: part of it, its headers only, the metadata file.
  assert.equal((await get(root.path, { range: 'bytes=0-9' })).status, 206);
  assert.equal((await fetchRaw(`${mirror.base}/${root.path}`, { ca: mirror.tls.cert, method: 'HEAD' })).status, 200);
  assert.equal((await get(meta.path)).status, 200);

  await mirror.close();
  const rows = JSON.parse(await wharfOk(data, ['stats', '--by', 'image', '--format', 'json'])) as unknown[];
  assert.deepEqual(rows, [{ fingerprint: meta.combined_squashfs_sha256, product: productKey, downloads: 2, file: 2, redirect: 0, export: 0 }]);
});

test('a client that stops reading a file being filled is cut after send_timeout; the fill goes on and is kept', async (t) => {
  const work = await tempDir(t);
  const up = await origin(t, work, [{ os: 'Paused', padMiB: 40 }]);
  const { mirror, get } = await mirrorOf(t, work, up, { sendTimeout: 2 });
  const item = squashfsOf(up.items)[0]!;
  up.server.faults.set(item.path, 'slow');

  const client = tlsConnect({ host: '127.0.0.1', port: mirror.httpsPort, ca: mirror.tls.cert });
  await once(client, 'secureConnect');
  client.write(`GET /${item.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  const [first] = (await once(client, 'data')) as [Buffer];
  client.pause();
  // Longer than the timeout after the buffers on both ends are full (the fill sends ~3 MB/s).
  await new Promise((r) => setTimeout(r, 8_000));
  const chunks: Buffer[] = [first];
  client.on('data', (c: Buffer) => chunks.push(c));
  client.on('error', () => {});
  client.resume();
  await once(client, 'close');
  const got = Buffer.concat(chunks).length;
  assert.ok(got < item.size, `cut short: ${got} bytes of ${item.size}`);
  // The fill did not depend on that client: it completes, verified, and is served whole.
  for (let i = 0; i < 300 && (await get(item.path)).headers['x-wharf-cache'] !== 'HIT'; i++) await new Promise((r) => setTimeout(r, 100));
  const kept = await get(item.path);
  assert.equal(kept.headers['x-wharf-cache'], 'HIT');
  assert.equal(sha256(kept.body), item.sha256);
});
