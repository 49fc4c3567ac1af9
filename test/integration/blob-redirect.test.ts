/**
 * `blob_redirect` on a real S3 engine (OpenStack Swift): artifact downloads answered with a
 * redirect to a short-lived presigned URL, so the bytes come from the object store. A file still
 * in its upload's parts is served by wharf and consolidated in the background; HEAD and
 * revalidations stay with wharf; the download is counted; the setting needs an S3 blob store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { useS3 } from '../helpers/s3.ts';
import { until } from '../helpers/until.ts';
import { partSize } from '../../src/blob/s3.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');


test('blob_redirect: downloads go to presigned URLs of the object store; a file in parts is served, then consolidated and redirected', async (t) => {
  const work = await tempDir(t);
  const blobStore = await useS3();
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Offloaded', release: '1', architecture: 'amd64' } });
  // Bigger than two of the S3 driver's parts: stored in pieces until consolidated.
  const root = await buildSquashfs(work, { seed: 'offloaded', padMiB: 20 });
  assert.ok(root.size > 2 * partSize, `the rootfs (${root.size} bytes) must span several parts`);
  const fp = fingerprintFrom(await wharfOk(data, ['--blob-store', blobStore, '--s3-path-style', 'image', 'import', meta.path, root.path, '--alias', 'off']));
  const server = await serve(t, data, { blobStore, s3PathStyle: true, blobRedirect: true, processes: 1 });
  const get = (path: string, options: Parameters<typeof fetchRaw>[1] = {}) => fetchRaw(server.base + path, { ca: server.tls.cert, ...options });

  // The small metadata file is one part: redirected from the first download on.
  const index = JSON.parse((await get('/streams/v1/images.json')).body.toString());
  const items = Object.values(Object.values(index.products as Record<string, { versions: Record<string, { items: Record<string, { path: string; sha256: string }> }> }>)[0]!.versions)[0]!.items;
  const metaItem = Object.values(items).find((i) => i.sha256 === meta.sha256)!;
  const rootItem = Object.values(items).find((i) => i.sha256 === root.sha256)!;
  assert.ok(metaItem && rootItem, JSON.stringify(items));
  const redirected = await get(`/${metaItem.path}`);
  assert.equal(redirected.status, 302, `metadata: ${redirected.status}`);
  const location = String(redirected.headers.location);
  assert.match(location, /^http:\/\/127\.0\.0\.1:\d+\/.*X-Amz-Signature=/, 'a presigned URL of the object store');
  assert.equal(redirected.headers['cache-control'], 'no-store');
  assert.ok(!location.includes(process.env.AWS_SECRET_ACCESS_KEY!), 'no secret in the URL');
  const fromStore = await fetchRaw(location);
  assert.equal(fromStore.status, 200);
  assert.equal(sha256(fromStore.body), meta.sha256, 'the presigned URL reads the exact file, without credentials');
  // A range asked of wharf reaches the store with the redirect (clients copy the headers).
  const ranged = await fetchRaw(location, { headers: { range: 'bytes=10-19' } });
  assert.equal(ranged.status, 206);
  assert.deepEqual(ranged.body, fromStore.body.subarray(10, 20));
  // HEAD and a revalidation are answered by wharf: a presigned GET opens nothing else.
  const head = await get(`/${metaItem.path}`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(meta.size));
  assert.equal((await get(`/${metaItem.path}`, { headers: { 'if-none-match': `"${meta.sha256}"` } })).status, 304);

  // The rootfs is in parts: its first download is served by wharf, whole and right...
  const served = await get(`/${rootItem.path}`);
  assert.equal(served.status, 200);
  assert.equal(sha256(served.body), root.sha256);
  // ...and the server consolidates it meanwhile: then it is redirected, and the store has the same bytes.
  const later = await until('the rootfs is redirected', async () => {
    const r = await get(`/${rootItem.path}`);
    return r.status === 302 ? r : undefined;
  }, 20_000);
  const consolidated = await fetchRaw(String(later.headers.location));
  assert.equal(consolidated.status, 200);
  assert.equal(sha256(consolidated.body), root.sha256);
  // wharf itself still reads it (a replica without blob_redirect, the CLI, a mirror's sync).
  assert.equal((await wharfOk(data, ['--blob-store', blobStore, '--s3-path-style', 'image', 'info', fp])).includes(fp), true);
  const direct = await get(`/${rootItem.path}`, { method: 'HEAD' });
  assert.equal(direct.status, 200);

  // The image's downloads are counted (its rootfs's: the metadata file is no download), the
  // redirected ones as such.
  await server.close();
  const [row] = JSON.parse(await wharfOk(data, ['--blob-store', blobStore, '--s3-path-style', 'stats', '--by', 'image', '--format', 'json'])) as { fingerprint: string; file: number; redirect: number }[];
  assert.equal(row?.fingerprint, fp, JSON.stringify(row));
  assert.ok(row.file >= 1 && row.redirect === 1, JSON.stringify(row));
});

test('blob_redirect needs an s3:// blob store: a clear configuration error', async (t) => {
  const work = await tempDir(t);
  const r = await wharf(join(work, 'data'), ['serve', '--https', '127.0.0.1:0', '--blob-redirect']);
  assert.equal(r.code, 78, r.stderr);
  assert.match(r.stderr, /blob_redirect needs an s3:\/\/ blob_store/);
});
