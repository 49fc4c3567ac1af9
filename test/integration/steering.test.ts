/**
 * GeoIP steering on the origin, with real processes: an origin wharf with a GeoIP database built
 * in the test, wharf mirrors as its sites, clients "from" different countries via a trusted
 * proxy's X-Forwarded-For, health checks that drop a dead, tampering, lying or looping site and
 * take it back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { buildGeoipDb } from '../fixtures/geoip.ts';
import { serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { startFaultServer } from '../helpers/fault-server.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const fromGermany = '198.51.100.7';
const fromFrance = '203.0.113.5';
const fromUsa = '192.0.2.1';

interface SiteView {
  name: string;
  health: { http: boolean; https: boolean; error: string | null; held: string[] | null; checkedAt: string } | null;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('the origin sends each region to its healthy site, serves the rest itself, and never redirects the index', async (t) => {
  const work = await tempDir(t);
  const db = join(work, 'geo.mmdb');
  await buildGeoipDb(db, [
    { cidr: '198.51.100.0/24', country: 'DE', continent: 'EU' },
    { cidr: '203.0.113.0/24', country: 'FR', continent: 'EU' },
    { cidr: '192.0.2.0/24', country: 'US', continent: 'NA' },
  ]);
  const data = join(work, 'origin');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Steered', release: '1', architecture: 'amd64' } });
  const root = await buildSquashfs(work, { seed: 'steered', padMiB: 2 });
  await wharfOk(data, ['image', 'import', meta.path, root.path, '--alias', 'steered']);
  const origin = await serve(t, data, { geoipDb: db, trustedProxies: ['127.0.0.1/32', '::1'], siteCheckInterval: 1, http: true });

  const germany = await serve(t, join(work, 'm-de'), { mirrorOf: origin.base, originCertificate: origin.tls.certPath });
  const europe = await serve(t, join(work, 'm-eu'), { mirrorOf: origin.base, originCertificate: origin.tls.certPath });
  // A site that answers every file with a flipped byte: never used.
  const tree = join(work, 'tree');
  await wharfOk(data, ['tree', 'export', tree]);
  const tamperer = await startFaultServer(tree);
  t.after(() => tamperer.close());
  tamperer.beforeEach = async (path) => void tamperer.faults.set(path, 'corrupt');
  // A site that serves the small file right and the image's rootfs wrong, and says it holds both:
  // it would have won every German draw.
  const lies = join(work, 'lies');
  await cp(tree, lies, { recursive: true });
  await writeFile(join(lies, 'files', `${root.sha256}.squashfs`), randomBytes(root.size));
  await mkdir(join(lies, '.wharf'));
  await writeFile(join(lies, '.wharf', 'held'), JSON.stringify({ held: [root.sha256, meta.sha256] }));
  const liar = await startFaultServer(lies);
  t.after(() => liar.close());
  liar.ranges = true;
  // A site that sends every request back to the origin (whose plain http port serves /files/):
  // clients would go round in circles.
  const looper = await startFaultServer(tree);
  t.after(() => looper.close());
  looper.beforeEach = async (path) => void looper.redirects.set(path, `http://127.0.0.1:${origin.httpPort}/${path}`);

  await wharfOk(data, ['site', 'add', 'de', germany.base, '--country', 'de']);
  await wharfOk(data, ['site', 'add', 'eu', europe.base, '--continent', 'EU', '--weight', '2']);
  await wharfOk(data, ['site', 'add', 'evil', tamperer.base, '--country', 'FR']);
  await wharfOk(data, ['site', 'add', 'liar', liar.base, '--country', 'DE']);
  await wharfOk(data, ['site', 'add', 'loop', looper.base, '--country', 'US']);
  assert.equal((await wharf(data, ['site', 'add', 'x', germany.base, '--country', 'Germany'])).code, 64);
  assert.equal((await wharf(data, ['site', 'add', 'x', germany.base])).code, 64, 'a site serves some region');
  assert.equal((await wharf(data, ['site', 'remove', 'nothing'])).code, 66);

  const sites = () => wharfOk(data, ['site', 'list', '--format', 'json']).then((out) => JSON.parse(out) as SiteView[]);
  const checked = await until('every site checked', async () => {
    const all = await sites();
    return all.every((s) => s.health) ? all : undefined;
  });
  const byName = new Map(checked.map((s) => [s.name, s.health!]));
  assert.ok(byName.get('de')!.http && byName.get('eu')!.http, 'the mirrors answer over plain http');
  assert.equal(byName.get('evil')!.http, false);
  assert.match(byName.get('evil')!.error ?? '', /differs from the origin's file/);
  assert.equal(byName.get('liar')!.http, false, 'a sampled range of the file it claims gives it away');
  assert.match(byName.get('liar')!.error ?? '', new RegExp(`files/${root.sha256}\\.squashfs differs from the origin's file \\(bytes \\d+-\\d+\\)`));
  assert.equal(byName.get('loop')!.http, false);
  assert.match(byName.get('loop')!.error ?? '', new RegExp(`redirects to http://127\\.0\\.0\\.1:${origin.httpPort}/files/`));

  const path = `files/${root.sha256}.squashfs`;
  const ask = (client: string | undefined, headers: Record<string, string> = {}, file = path) =>
    fetchRaw(`${origin.base}/${file}`, { ca: origin.tls.cert, headers: { ...(client ? { 'x-forwarded-for': client } : {}), ...headers } });
  // Every serving process reads the sites again within two seconds.
  const german = await until('the first redirect', async () => {
    const answer = await ask(fromGermany);
    return answer.status === 302 ? answer : undefined;
  });
  // One process steers now; every serving process has read the sites 2 s later.
  await new Promise((r) => setTimeout(r, 2_200));
  assert.equal(german.headers.location, `http://127.0.0.1:${germany.httpsPort}/${path}`, 'a plain http URL of the site');
  assert.match(String(german.headers['x-request-id']), /^[0-9a-f]{16}$/, 'a redirect carries its request id, as every answer does');
  assert.equal(german.headers['content-length'], '0');
  // A channel root's clients ask for /CHANNEL/files/: the same file, steered to the site's /files/.
  assert.equal((await ask(fromGermany, {}, `daily/${path}`)).headers.location, `http://127.0.0.1:${germany.httpsPort}/${path}`);
  const got = await fetchRaw(String(german.headers.location));
  assert.equal(got.status, 200);
  assert.equal(sha256(got.body), root.sha256, 'the site serves the very file');
  assert.equal((await ask(fromFrance)).headers.location, `http://127.0.0.1:${europe.httpsPort}/${path}`, 'France: its only site is failing, so the continent site');
  const american = await ask(fromUsa);
  assert.equal(american.status, 200, 'no healthy site for the region (its site loops): the origin serves');
  assert.equal(sha256(american.body), root.sha256);
  assert.equal((await ask(undefined)).status, 200, 'a client the database does not know is served by the origin');
  assert.equal((await ask(fromGermany, { 'x-lxc-no-geoip': 'on' })).status, 200, 'mirrors are never redirected');
  assert.equal((await ask(fromGermany, {}, 'streams/v1/index.json')).status, 200, 'the index is always the origin\'s');
  assert.equal((await ask(fromGermany, {}, `files/${meta.sha256}.tar.xz`)).status, 200, 'small files are served by the origin');
  // (The other serving process may read the sites a moment later: every process does within 2 s.)
  const plain = await until('plain http steered', async () => {
    const answer = await fetchRaw(`http://127.0.0.1:${origin.httpPort}/${path}`, { headers: { 'x-forwarded-for': fromGermany } });
    return answer.status === 302 ? answer : undefined;
  });
  assert.equal(plain.headers.location, `http://127.0.0.1:${germany.httpsPort}/${path}`, 'plain http downloads are steered too');

  // The German mirror now holds the file and says so; the origin prefers a site that has it, and
  // samples it there: a range of it, served from the cache, matches the origin's bytes.
  const holding = await until('the held file reported', async () => {
    const health = (await sites()).find((s) => s.name === 'de')!.health!;
    return health.held?.includes(root.sha256) ? health : undefined;
  });
  assert.equal(holding.http, true, holding.error ?? '');

  // A site that goes down leaves the rotation at the next check, and comes back when healthy.
  await germany.close();
  await until('the German site dropped', async () => ((await ask(fromGermany)).headers.location === `http://127.0.0.1:${europe.httpsPort}/${path}` ? true : undefined));
  assert.equal((await sites()).find((s) => s.name === 'de')!.health!.http, false);
  await wharfOk(data, ['site', 'remove', 'eu']);
  await until('no site left for Germany', async () => ((await ask(fromGermany)).status === 200 ? true : undefined));

  // Usage statistics: a redirect counts as a download of the image (the site serves it), and so
  // does each download the origin served itself; the metadata tarball does not.
  await origin.close(5_000);
  const [counted] = JSON.parse(await wharfOk(data, ['stats', '--format', 'json'])) as { product: string; file: number; redirect: number; export: number }[];
  assert.equal(counted!.product, 'steered:1:amd64:default');
  assert.ok(counted!.redirect >= 3, `German, French and plain-http redirects (${counted!.redirect})`);
  assert.ok(counted!.file >= 4, `served by the origin: no region, unknown client, no-geoip, no site left (${counted!.file})`);
});
