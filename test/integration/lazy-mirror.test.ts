/** Lazy mirrors: published at once, each file fetched on first request, verified, coalesced, kept. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { startFaultServer } from '../helpers/fault-server.ts';

test('a lazy mirror serves upstream files on demand, verified and fetched once', async (t) => {
  const work = await tempDir(t);
  const source = join(work, 'source');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Lazy', release: '1', architecture: 'amd64' } });
  const sq = await buildSquashfs(work, { seed: 'lazy', padMiB: 2 });
  const fp = fingerprintFrom(await wharfOk(source, ['image', 'import', meta.path, sq.path]));
  const meta2 = await buildMetadataTarball(work, { name: 'm2.tar.xz', properties: { os: 'Bad', release: '1', architecture: 'amd64' } });
  const sq2 = await buildSquashfs(work, { seed: 'bad', name: 's2.squashfs' });
  const fpBad = fingerprintFrom(await wharfOk(source, ['image', 'import', meta2.path, sq2.path]));
  const tree = join(work, 'tree');
  await wharfOk(source, ['tree', 'export', tree]);
  const upstream = await startFaultServer(tree);
  t.after(() => upstream.close());

  const data = join(work, 'data');
  await wharfOk(data, ['remote', 'add', 'up', upstream.base]);
  await wharfOk(data, ['mirror', 'add', 'lz', 'up', '--lazy']);
  await wharfOk(data, ['mirror', 'sync']);
  const filesFetched = () => upstream.requests.filter((p) => p.startsWith('files/')).length;
  assert.equal(filesFetched(), 0, 'a lazy sync downloads no file');
  const listed = JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])) as { fingerprint: string; cached: boolean; public: boolean }[];
  assert.deepEqual(listed.map((i) => i.fingerprint).sort(), [fp, fpBad].sort());
  assert.ok(listed.every((i) => i.cached && i.public));
  assert.match(await wharfOk(data, ['image', 'verify']), /ok/);

  const server = await serve(t, data);
  const path = `/files/${sq.sha256}.squashfs`;
  const get = () => fetchRaw(server.base + path, { ca: server.tls.cert });
  const answers = await Promise.all([get(), get(), get()]);
  for (const a of answers) {
    assert.equal(a.status, 200);
    assert.equal(createHash('sha256').update(a.body).digest('hex'), sq.sha256);
  }
  assert.equal(upstream.requests.filter((p) => p === `files/${sq.sha256}.squashfs`).length, 1, 'concurrent first requests share one download');
  assert.equal((await get()).status, 200);
  assert.equal(upstream.requests.filter((p) => p === `files/${sq.sha256}.squashfs`).length, 1, 'then it is kept');

  // An upstream file that does not match the index is never served nor kept.
  upstream.faults.set(`files/${sq2.sha256}.squashfs`, 'corrupt');
  const bad = await fetchRaw(`${server.base}/files/${sq2.sha256}.squashfs`, { ca: server.tls.cert });
  assert.notEqual(bad.status, 200);
  const stored = await fetchRaw(`${server.base}/files/${sq2.sha256}.squashfs`, { ca: server.tls.cert });
  assert.notEqual(stored.status, 200);
  assert.match(await wharfOk(data, ['image', 'verify', fp]), new RegExp(`${fp}: ok`));
});
