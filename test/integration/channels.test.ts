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
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
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
  // A channel nobody published in has no root; names that are not channels are refused.
  assert.equal((await get('/stable/streams/v1/index.json')).status, 404);
  assert.equal((await get(`/stable/${item.path}`)).status, 404);
  const bad = await wharf(data, ['image', 'promote', v1, '--channel', '../etc']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /not a channel name/);
  assert.notEqual((await wharf(data, ['image', 'promote', v1, '--channel', 'streams'])).code, 0, 'a name of the server own paths');

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
  await wharfOk(mirror, ['remote', 'add', 'up-daily', `${server.base}/daily`, '--certificate', join(work, 'origin.crt')]);
  await wharfOk(mirror, ['mirror', 'add', 'daily', 'up-daily']);
  await wharfOk(mirror, ['mirror', 'sync', 'daily']);
  assert.deepEqual((JSON.parse(await wharfOk(mirror, ['image', 'list', '--format', 'json'])) as { fingerprint: string }[]).map((i) => i.fingerprint), [v2], 'a mirror of the channel root holds its images, files checked');

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
