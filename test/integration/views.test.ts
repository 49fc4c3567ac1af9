/**
 * Private views over HTTP, probed as an attacker and as a client would: a view's index lists its
 * channel's images that match its filters, private ones included, to the holders of a token; the
 * token is in no artifact URL, redirect, log line or metric; a wrong, expired or revoked token
 * answers exactly as a path that does not exist; a revoked token's file URLs close after the
 * grace period; nothing public shows a private image.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join, posix } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { buildUnified } from '../fixtures/images.ts';
import { capturingLogger, fingerprintFrom, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw, type Response } from '../helpers/http.ts';
import { until } from '../helpers/until.ts';

interface Products {
  products: Record<string, { versions: Record<string, { items: Record<string, { path: string; sha256: string; size: number; ftype: string }> }> }>;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** What two "not found" answers show a client: equal when nothing tells them apart. */
const shown = (r: Response) => ({ status: r.status, type: r.headers['content-type'], location: r.headers.location, body: r.body.toString() });

test('a private view: its token opens its selection, private images included, and nothing else; artifact URLs carry no token', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const image = async (seed: string, os: string, args: string[]) => {
    const built = await buildUnified(work, { properties: { os, release: '1', serial: `2026120${seed.length}_00:00` }, seed, name: `${seed}.tar.gz` });
    return fingerprintFrom(await wharfOk(data, ['image', 'import', built.path, ...args]));
  };
  const publicDefault = await image('pub-default', 'Acme', []);
  const privateAcme = await image('private-acme', 'Acme', ['--channel', 'stable', '--private']);
  const publicStable = await image('public-stable', 'Acmepub', ['--channel', 'stable']);
  const privateOther = await image('private-other', 'Other', ['--channel', 'stable', '--private']);
  await wharfOk(data, ['view', 'add', 'acme', '--channel', 'stable', '--filter', 'os=acme']);
  await wharfOk(data, ['view', 'add', 'pubonly', '--channel', 'stable', '--filter', 'os=acmepub']);
  assert.notEqual((await wharf(data, ['view', 'add', 'acme', '--channel', 'daily'])).code, 0, 'one view per name');
  const bad = await wharf(data, ['view', 'add', 'Bad/Name']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /not a view name/);

  const logs = capturingLogger();
  const server = await serve(t, data, { processes: 1, log: logs.log, gracePeriod: 3 });
  const get = (path: string, headers: Record<string, string> = {}) => fetchRaw(server.base + path, { ca: server.tls.cert, headers });
  const plain = (path: string) => fetchRaw(`http://127.0.0.1:${server.httpsPort}${path}`);
  const tokenUrl = async (view: string, ...args: string[]) => (await wharfOk(data, ['view', 'token', 'add', view, '--url', server.base, ...args])).trim();
  const url = await tokenUrl('acme', '--description', 'acme ops');
  const { pathname: remotePath } = new URL(url);
  assert.match(remotePath, /^\/views\/acme\/wvt_[0-9a-f]{12}_[0-9a-f]{64}$/);
  const token = remotePath.split('/')[3]!;
  const [, id, secret] = token.split('_') as [string, string, string];

  // The view's index: its channel's images matching its filters, the private one included.
  const indexDoc = await until('the view is published', async () => {
    const r = await get(`${remotePath}/streams/v1/index.json`);
    return r.status === 200 ? r : undefined;
  }, 1_000);
  assert.equal(JSON.parse(indexDoc.body.toString()).index.images.path, 'streams/v1/images.json');
  const productsAnswer = await get(`${remotePath}/streams/v1/images.json`);
  assert.equal(productsAnswer.status, 200);
  assert.match(String(productsAnswer.headers['cache-control']), /private/);
  const products = JSON.parse(productsAnswer.body.toString()) as Products;
  const items = Object.values(products.products).flatMap((p) => Object.values(p.versions).flatMap((v) => Object.values(v.items)));
  const listed = new Set(items.map((i) => i.sha256));
  assert.ok(listed.has(privateAcme), 'the private image of its channel and filter');
  for (const fp of [publicDefault, publicStable, privateOther]) assert.ok(!listed.has(fp), `not ${fp.slice(0, 12)}: another channel or filter`);
  assert.ok(!productsAnswer.body.toString().includes(secret), 'no token in the index');

  // Each item resolves, as the clients resolve it (path.Join against the remote URL), to a URL
  // without the token that serves the file, over plain HTTP too.
  for (const item of items) {
    const resolved = posix.join(remotePath, item.path);
    assert.ok(!resolved.includes(secret) && !resolved.includes(token), resolved);
    assert.match(resolved, new RegExp(`^/views/acme/files/${id}\\.[0-9a-f]{32}/${item.sha256}`));
    for (const answer of [await get(resolved), await plain(resolved)]) {
      assert.equal(answer.status, 200);
      assert.equal(sha256(answer.body), item.sha256);
      assert.equal(answer.headers.location, undefined);
    }
    // The capability opens that file only: not another file, not under another view.
    const other = [...listed].find((s) => s !== item.sha256) ?? privateOther;
    assert.equal((await get(resolved.replace(item.sha256, other))).status, 404);
    assert.equal((await get(resolved.replace('/views/acme/', '/views/pubonly/'))).status, 404);
  }

  // wharf takes a view's URL as a remote too: the published-index check, and a mirror of it.
  const certFile = join(work, 'server.crt');
  await writeFile(certFile, server.tls.cert);
  const checked = await wharf(data, ['image', 'verify', '--published', url, '--certificate', certFile]);
  assert.equal(checked.code, 0, checked.stdout + checked.stderr);
  assert.ok(!checked.stdout.includes(secret) && !checked.stderr.includes(secret));
  const tenant = join(work, 'tenant');
  await wharfOk(tenant, ['remote', 'add', 'acme', url, '--certificate', certFile]);
  await wharfOk(tenant, ['mirror', 'add', 'acme', 'acme']);
  await wharfOk(tenant, ['mirror', 'sync', 'acme']);
  assert.match(await wharfOk(tenant, ['image', 'list', '--format', 'csv']), new RegExp(privateAcme.slice(0, 12)));
  assert.ok(!(await wharfOk(tenant, ['remote', 'list'])).includes(secret), 'remote list hides the token');

  // A public image in a view is served from the server's own /files/ (mirrors and steering serve it).
  const pubUrl = await tokenUrl('pubonly');
  const pubPath = new URL(pubUrl).pathname;
  const pubItems = Object.values((JSON.parse((await until('pubonly published', async () => {
    const r = await get(`${pubPath}/streams/v1/images.json`);
    return r.status === 200 ? r : undefined;
  }, 1_000)).body.toString()) as Products).products).flatMap((p) => Object.values(p.versions).flatMap((v) => Object.values(v.items)));
  assert.ok(pubItems.length > 0);
  for (const item of pubItems) {
    assert.match(posix.join(pubPath, item.path), /^\/files\/[0-9a-f]{64}/);
    assert.equal(sha256((await get(posix.join(pubPath, item.path))).body), item.sha256);
  }

  // Nothing public shows the private image: the roots, the catalogue, the LXD API.
  for (const path of ['/streams/v1/images.json', '/stable/streams/v1/images.json', '/catalogue/v1/products.json', '/1.0/images?recursion=1', '/']) {
    const r = await get(path, path === '/' ? { accept: 'text/html' } : {});
    assert.ok(!r.body.toString().includes(privateAcme), `${path} names the private image`);
    assert.ok(!r.body.toString().includes('acme ops') && !/views\/acme/.test(r.body.toString()), `${path} names the view`);
  }
  assert.equal((await get(`/files/${privateAcme}.tar.gz`)).status, 404);

  // Wrong tokens of every kind answer as a path that does not exist.
  const missing = shown(await get('/views/acme/nothing-here/streams/v1/index.json'));
  assert.equal(missing.status, 404);
  const wrongSecret = `wvt_${id}_${'0'.repeat(64)}`;
  const probes = [
    `/views/acme/${wrongSecret}/streams/v1/index.json`,
    `/views/acme/wvt_${'1'.repeat(12)}_${secret}/streams/v1/index.json`,
    `/views/pubonly/${token}/streams/v1/index.json`,
    `/views/nosuch/${token}/streams/v1/index.json`,
    `/views/acme/${token}/streams/v1/nosuch.json`,
    `/views/acme/${token.toUpperCase()}/streams/v1/index.json`,
    `/views/acme/files/${id}.${'0'.repeat(32)}/${privateAcme}.tar.gz`,
  ];
  for (const probe of probes) assert.deepEqual(shown(await get(probe)), missing, probe);
  // The index over plain HTTP: no answer, and no redirect carrying the token.
  const plainIndex = await plain(`${remotePath}/streams/v1/index.json`);
  assert.equal(plainIndex.status, 404);
  assert.equal(plainIndex.headers.location, undefined);

  // An expired token closes its view by itself.
  const shortLived = new URL(await tokenUrl('acme', '--expires', '2s')).pathname;
  assert.equal((await until('the short-lived token is published', async () => ((await get(`${shortLived}/streams/v1/index.json`)).status === 200 ? true : undefined), 1_000)), true);
  await until('the token expires', async () => ((await get(`${shortLived}/streams/v1/index.json`)).status === 404 ? true : undefined), 5_000);
  assert.deepEqual(shown(await get(`${shortLived}/streams/v1/index.json`)), missing);

  // Listed by id, state and description; never the secret nor its hash.
  const listing = await wharfOk(data, ['view', 'token', 'list', 'acme', '--format', 'json']);
  const listed2 = JSON.parse(listing) as { id: string; state: string; description: string }[];
  assert.deepEqual(listed2.map((x) => x.state).sort(), ['expired', 'live']);
  assert.equal(listed2.find((x) => x.id === id)!.description, 'acme ops');
  assert.ok(!listing.includes(secret) && !listing.includes(createHash('sha256').update(secret).digest('hex')));

  // Revoked: the view closes at once; the file URLs it handed out after the grace period (3 s here).
  const fileUrl = posix.join(remotePath, items.find((i) => i.sha256 === privateAcme || i.ftype.endsWith('combined.tar.gz'))!.path);
  await wharfOk(data, ['view', 'token', 'revoke', 'acme', id]);
  await until('the revocation is published', async () => ((await get(`${remotePath}/streams/v1/index.json`)).status === 404 ? true : undefined), 1_000);
  assert.deepEqual(shown(await get(`${remotePath}/streams/v1/images.json`)), missing);
  assert.equal((await get(fileUrl)).status, 200, 'within the grace period, a client holding the index still gets its files');
  await until('the grace period ends', async () => ((await get(fileUrl)).status === 404 ? true : undefined), 6_000);
  assert.deepEqual(shown(await get(fileUrl)), { ...missing });

  // No log line and no metric carries a token: the id stays, so a line still says which.
  const metrics = await get('/metrics');
  assert.ok(!metrics.body.toString().includes(secret));
  const lines = logs.records.map((r) => JSON.stringify(r));
  assert.ok(lines.some((l) => l.includes(`wvt_${id}_REDACTED`)), 'the requests are logged, by token id');
  for (const l of lines) assert.ok(!l.includes(secret), l);

  // Removing the view closes every token at once.
  const again = new URL(await tokenUrl('acme')).pathname;
  await until('the new token is published', async () => ((await get(`${again}/streams/v1/index.json`)).status === 200 ? true : undefined), 1_000);
  await wharfOk(data, ['view', 'remove', 'acme']);
  await until('the view is gone', async () => ((await get(`${again}/streams/v1/index.json`)).status === 404 ? true : undefined), 1_000);
  assert.notEqual((await wharf(data, ['view', 'token', 'add', 'acme', '--url', server.base])).code, 0);
});
