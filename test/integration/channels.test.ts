/**
 * Channels: several simplestreams roots from one store. An image imported into a channel is
 * served under /CHANNEL/streams/v1/ (its files under /CHANNEL/files/ too, where clients resolve
 * them against a remote URL with a path), not in the default root; promote and demote move
 * images between roots at the next publish; a demoted newest version gives way to the one before.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { until } from '../helpers/until.ts';

interface Products {
  products: Record<string, { aliases?: string; versions: Record<string, { items: Record<string, { path: string; sha256: string; combined_squashfs_sha256?: string }> }> }>;
}

test('channels: each its own root with its own newest version; promote and demote move images between roots', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = (serial: string) => buildMetadataTarball(work, { name: `m-${serial}.tar.xz`, properties: { os: 'Chan', release: '1', architecture: 'amd64', serial } });
  const root = (seed: string) => buildSquashfs(work, { name: `r-${seed}.squashfs`, seed });
  const v1 = fingerprintFrom(await wharfOk(data, ['image', 'import', (await meta('20260101_00:00')).path, (await root('v1')).path]));
  const v2 = fingerprintFrom(await wharfOk(data, ['image', 'import', (await meta('20260201_00:00')).path, (await root('v2')).path, '--channel', 'daily']));
  const server = await serve(t, data, { processes: 1 });
  const get = (path: string) => fetchRaw(server.base + path, { ca: server.tls.cert });
  const versions = async (root: string) => {
    const answer = await get(`${root}/streams/v1/images.json`);
    if (answer.status !== 200) return { status: answer.status, fingerprints: [] as string[] };
    const doc = JSON.parse(answer.body.toString()) as Products;
    const fingerprints = Object.values(doc.products).flatMap((p) => Object.values(p.versions).map((v) => v.items['lxd.tar.xz']!.combined_squashfs_sha256!));
    return { status: 200, fingerprints: fingerprints.sort(), doc };
  };

  // Each root lists its own: the default one v1, daily v2.
  assert.deepEqual((await versions('')).fingerprints, [v1]);
  const daily = await versions('/daily');
  assert.deepEqual(daily.fingerprints, [v2]);
  const index = JSON.parse((await get('/daily/streams/v1/index.json')).body.toString());
  assert.equal(index.index.images.path, 'streams/v1/images.json', "a channel's index names its products relative to its own root");
  // Its files, where a client resolves them against https://HOST/daily: the same bytes as /files/.
  const item = Object.values(Object.values(daily.doc!.products)[0]!.versions)[0]!.items['root.squashfs']!;
  const viaChannel = await get(`/daily/${item.path}`);
  assert.equal(viaChannel.status, 200);
  assert.equal(createHash('sha256').update(viaChannel.body).digest('hex'), item.sha256);
  assert.equal((await get(`/${item.path}`)).status, 200);
  // A channel nobody published in has no root. Files are files under any channel's name (a
  // channel that lost its root still serves what its clients' cached index lists), never under a
  // name that cannot be one.
  assert.equal((await get('/stable/streams/v1/index.json')).status, 404);
  assert.equal((await get(`/Stable/${item.path}`)).status, 404);
  assert.equal((await get(`/1.0/${item.path}`)).status, 404);
  const bad = await wharf(data, ['image', 'promote', v1, '--channel', '../etc']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /not a channel name/);
  assert.notEqual((await wharf(data, ['image', 'promote', v1, '--channel', 'streams'])).code, 0, 'a name of the server own paths');

  // The catalogue lists the default channel (what the commands it shows reach) and names the others.
  const catalogue = JSON.parse((await get('/catalogue/v1/products.json')).body.toString()) as { products: { versions: { images: { fingerprint: string }[] }[] }[] };
  assert.deepEqual(catalogue.products.flatMap((p) => p.versions.flatMap((v) => v.images.map((i) => i.fingerprint))), [v1]);
  const page = (await fetchRaw(`${server.base}/`, { ca: server.tls.cert, headers: { accept: 'text/html' } })).body.toString();
  assert.match(page, /Other channels are simplestreams remotes of their own[^<]*<code>\/daily<\/code>/);

  // Direct URLs under a channel's root answer with that channel's images (unified ones only).
  const unified = await buildUnified(work, { properties: { os: 'Direct', release: '1', architecture: 'amd64' }, seed: 'direct' });
  const direct = fingerprintFrom(await wharfOk(data, ['image', 'import', unified.path, '--channel', 'daily']));
  await until('the direct image is published', async () => ((await get('/daily/direct/direct/1')).status === 200 ? true : undefined), 5_000);
  const head = await fetchRaw(`${server.base}/daily/direct/direct/1`, { ca: server.tls.cert, method: 'HEAD' });
  assert.equal(head.headers['incus-image-hash'], direct);
  assert.equal((await get('/direct/direct/1')).status, 404, 'not in the default root');
  assert.equal((await get('/stable/direct/direct/1')).status, 404);
  await wharfOk(data, ['image', 'delete', direct]);

  // What else reads a channel: image list's filter, a tree exported from it, a mirror of its root.
  const listed = async (filter: string) => (JSON.parse(await wharfOk(data, ['image', 'list', filter, '--format', 'json'])) as { fingerprint: string }[]).map((i) => i.fingerprint);
  assert.deepEqual(await listed('channel=daily'), [v2]);
  assert.deepEqual(await listed('channel=default'), [v1]);
  for (const [channel, fp] of [[undefined, v1], ['daily', v2]] as const) {
    const tree = join(work, `tree-${channel ?? 'default'}`);
    await wharfOk(data, ['tree', 'export', tree, ...(channel ? ['--channel', channel] : [])]);
    const exported = JSON.parse(await readFile(join(tree, 'streams/v1/images.json'), 'utf8')) as Products;
    assert.deepEqual(Object.values(exported.products).flatMap((p) => Object.values(p.versions).map((v) => v.items['lxd.tar.xz']!.combined_squashfs_sha256)), [fp], `tree of ${channel ?? 'the default channel'}`);
  }
  const mirror = join(work, 'mirror');
  await writeFile(join(work, 'origin.crt'), server.tls.cert);
  // The published-index check reads a channel's root as the clients do.
  const verified = await wharf(data, ['image', 'verify', '--published', `${server.base}/daily`, '--certificate', join(work, 'origin.crt')]);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  await wharfOk(mirror, ['remote', 'add', 'up-daily', `${server.base}/daily`, '--certificate', join(work, 'origin.crt')]);
  await wharfOk(mirror, ['mirror', 'add', 'daily', 'up-daily']);
  await wharfOk(mirror, ['mirror', 'sync', 'daily']);
  assert.deepEqual((JSON.parse(await wharfOk(mirror, ['image', 'list', '--format', 'json'])) as { fingerprint: string }[]).map((i) => i.fingerprint), [v2], 'a mirror of the channel root holds its images, files checked');
  // A regional mirror (serve --mirror-of) of the channel's root: clients asking it for the index
  // are sent to the channel's own (as for any origin), and it serves the channel's files.
  const edge = await serve(t, join(work, 'edge'), { mirrorOf: `${server.base}/daily`, originCertificate: join(work, 'origin.crt'), processes: 1 });
  const sent = await fetchRaw(`${edge.base}/streams/v1/images.json`, { ca: edge.tls.cert });
  assert.equal(sent.headers.location, `${server.base}/daily/streams/v1/images.json`, `${sent.status}`);
  await until('the edge mirror knows the daily files', async () => ((await fetchRaw(`${edge.base}/${item.path}`, { ca: edge.tls.cert, method: 'HEAD' })).status === 200 ? true : undefined), 10_000);
  const fromEdge = await fetchRaw(`${edge.base}/${item.path}`, { ca: edge.tls.cert });
  assert.equal(fromEdge.status, 200);
  assert.equal(createHash('sha256').update(fromEdge.body).digest('hex'), item.sha256);

  // Promoted: v2 joins the default root, whose newest version (and product alias) it becomes.
  await wharfOk(data, ['image', 'promote', v2.slice(0, 12), '--channel', 'default']);
  await until('v2 in the default root', async () => ((await versions('')).fingerprints.length === 2 ? true : undefined), 5_000);
  assert.match(await wharfOk(data, ['image', 'info', v2]), /Channels: daily, default/);
  // Demoted from the default root: it is back to v1 alone; daily keeps v2.
  await wharfOk(data, ['image', 'demote', v2, '--channel', 'default']);
  await until('v2 out of the default root', async () => ((await versions('')).fingerprints.length === 1 ? true : undefined), 5_000);
  assert.deepEqual((await versions('')).fingerprints, [v1]);
  assert.deepEqual((await versions('/daily')).fingerprints, [v2]);
  // Out of its last channel: daily has no root any more; the image stays in the store.
  await wharfOk(data, ['image', 'demote', v2, '--channel', 'daily']);
  await until('daily gone', async () => ((await get('/daily/streams/v1/index.json')).status === 404 ? true : undefined), 5_000);
  assert.match(await wharfOk(data, ['image', 'info', v2]), /Channels: none/);

  // Every move is on record: who, when, from and to, after the import that began it.
  const history = JSON.parse(await wharfOk(data, ['image', 'history', v2, '--format', 'json'])) as { from: string[]; to: string[]; actor: string; at: string }[];
  assert.deepEqual(
    history.map((c) => [c.from, c.to]),
    [
      [['daily'], ['daily', 'default']],
      [['daily', 'default'], ['daily']],
      [['daily'], []],
    ],
  );
  for (const change of history) assert.match(change.actor, /^[^@\s]+@\S+$/, 'user@host of the CLI');
  const csv = (await wharfOk(data, ['image', 'history', v2, '--format', 'csv'])).trim().split('\n');
  assert.equal(csv.length, 4, 'the import and three moves');
  assert.match(csv[0]!, /,,\(imported\),daily$/);
  assert.match(csv[3]!, /,daily,none$/);
});

test('channel retention keeps the newest N versions and the pinned ones; a version leaves the store only when nothing holds it', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const version = async (n: number, ...args: string[]) => {
    const meta = await buildMetadataTarball(work, { name: `m${n}.tar.xz`, properties: { os: 'Kept', release: '1', architecture: 'amd64', serial: `2026010${n}_00:00` } });
    const root = await buildSquashfs(work, { name: `r${n}.squashfs`, seed: `kept-${n}` });
    return fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, root.path, '--channel', 'daily', ...args]));
  };
  const [v1, v2, v3, v4] = [await version(1), await version(2), await version(3), await version(4)];
  await wharfOk(data, ['image', 'promote', v1, '--channel', 'default']);
  await wharfOk(data, ['image', 'pin', v2, '--channel', 'daily']);
  assert.match(await wharfOk(data, ['image', 'info', v2]), /Pinned in: daily/);
  const inChannel = async (channel: string) => (JSON.parse(await wharfOk(data, ['image', 'list', `channel=${channel}`, '--format', 'json'])) as { fingerprint: string }[]).map((i) => i.fingerprint).sort();
  const stored = async () => (JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])) as { fingerprint: string }[]).map((i) => i.fingerprint).sort();

  assert.notEqual((await wharf(data, ['channel', 'set', 'daily', '--keep', '0'])).code, 0, 'a channel keeps one version at least');
  assert.match(await wharfOk(data, ['channel', 'set', 'daily', '--keep', '2']), /daily keeps the 2 newest versions of each product; 1 images left it, 0 of them the store/);
  // v4 and v3 are the newest two; v2 is pinned; v1 left daily but the default channel holds it.
  assert.deepEqual(await inChannel('daily'), [v2, v3, v4].sort());
  assert.deepEqual(await stored(), [v1, v2, v3, v4].sort());

  // A new build pushes v3 out of daily; nothing else holds it, so it leaves the store.
  const v5 = await version(5);
  assert.deepEqual(await inChannel('daily'), [v2, v4, v5].sort());
  assert.deepEqual(await stored(), [v1, v2, v4, v5].sort());
  const history = JSON.parse(await wharfOk(data, ['image', 'history', v1, '--format', 'json'])) as { actor: string; from: string[]; to: string[] }[];
  assert.deepEqual(history.at(-1), { ...history.at(-1), actor: 'retention', from: ['daily', 'default'], to: ['default'] });

  const channels = JSON.parse(await wharfOk(data, ['channel', 'list', '--format', 'json'])) as { name: string; keep: number | null; gate: string; images: number; pinned: number }[];
  // No test hooks: every gate is manual.
  assert.deepEqual(channels, [
    { name: 'daily', keep: 2, gate: 'manual', images: 3, pinned: 1 },
    { name: 'default', keep: null, gate: 'manual', images: 1, pinned: 0 },
  ]);
  // Unpinned, v2 goes at the next retention; "all" turns retention off again.
  await wharfOk(data, ['image', 'unpin', v2, '--channel', 'daily']);
  await wharfOk(data, ['channel', 'set', 'daily', '--keep', '2']);
  assert.deepEqual(await inChannel('daily'), [v4, v5].sort());
  await wharfOk(data, ['channel', 'set', 'daily', '--keep', 'all']);
  await version(6);
  assert.deepEqual((await inChannel('daily')).length, 3);

  // The served daily root lists what the channel holds.
  const server = await serve(t, data, { processes: 1 });
  const daily = (await fetchRaw(`${server.base}/daily/streams/v1/images.json`, { ca: server.tls.cert })).body.toString();
  assert.ok(daily.includes(v4) && daily.includes(v5) && !daily.includes(v3) && !daily.includes(v2));
});

test("the catalogue shows each version's channels and its moves between public roots, never who made them nor a channel nobody sees", async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const build = async (serial: string, seed: string) =>
    [(await buildMetadataTarball(work, { name: `m-${seed}.tar.xz`, properties: { os: 'Shown', release: '1', architecture: 'amd64', serial } })).path, (await buildSquashfs(work, { name: `r-${seed}.squashfs`, seed })).path];
  const v1 = fingerprintFrom(await wharfOk(data, ['image', 'import', ...(await build('20260101_00:00', 'v1'))]));
  // Built in a staging channel while private, promoted, made public, then out of staging: staging
  // never had a public root while the page could see it, so no move names it.
  const v2 = fingerprintFrom(await wharfOk(data, ['image', 'import', ...(await build('20260201_00:00', 'v2')), '--channel', 'staging', '--private']));
  await wharfOk(data, ['image', 'promote', v2, '--channel', 'default']);
  await wharfOk(data, ['image', 'edit', v2], { stdin: 'public: true\n' });
  await wharfOk(data, ['image', 'demote', v2, '--channel', 'staging']);
  await wharfOk(data, ['image', 'promote', v2, '--channel', 'stable']);
  const hidden = fingerprintFrom(await wharfOk(data, ['image', 'import', ...(await build('20260301_00:00', 'hidden')), '--private', '--property', 'os=Hidden']));
  const server = await serve(t, data, { processes: 1 });
  const get = (path: string) => fetchRaw(server.base + path, { ca: server.tls.cert });

  const catalogue = JSON.parse((await get('/catalogue/v1/products.json')).body.toString()) as { products: { key: string; versions: { images: { fingerprint: string; channels: string[] }[] }[] }[] };
  const product = catalogue.products.find((p) => p.key.startsWith('shown:'))!;
  assert.deepEqual(Object.fromEntries(product.versions.flatMap((v) => v.images.map((i) => [i.fingerprint, i.channels]))), { [v1]: ['default'], [v2]: ['default', 'stable'] });
  const answer = await get(`/catalogue/v1/history.json?product=${encodeURIComponent(product.key)}`);
  assert.equal(answer.status, 200);
  const { history } = JSON.parse(answer.body.toString()) as { history: { fingerprint: string; at: string; from: string[]; to: string[] }[] };
  assert.deepEqual(
    history.map((c) => [c.fingerprint, c.from, c.to]),
    [
      [v2, ['default'], ['default', 'stable']],
      [v2, [], ['default']],
    ],
    'newest first; the staging moves are not shown',
  );
  assert.ok(!answer.body.toString().includes('@') && !answer.body.toString().includes('staging'), 'who moved it, and the private channel, stay private');
  assert.equal(history.filter((c) => c.fingerprint === v1).length, 0, 'an import into the default channel is no move');
  // A product the catalogue does not show has no history here.
  assert.equal((await get(`/catalogue/v1/history.json?product=${encodeURIComponent(`hidden:1:amd64:default`)}`)).status, 404);
  assert.equal((await get('/catalogue/v1/history.json')).status, 404);
  assert.ok(!(await get('/catalogue/v1/products.json')).body.toString().includes(hidden));
});
