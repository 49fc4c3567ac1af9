/**
 * Replicas on a shared catalogue (PostgreSQL) and blob store (S3, a real OpenStack Swift): two
 * `wharf serve` with data directories of their own, the same certificate, and the CLI on a third,
 * as on three hosts. What one does, the others serve within a second; a one-time secret opens one
 * download across all of them; the background jobs run on one at a time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import selfsigned from 'selfsigned';
import { buildUnified } from '../fixtures/images.ts';
import { capturingLogger, fingerprintFrom, serve, sharedIdentity, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { freshDatabase, ownCluster } from '../helpers/postgres.ts';
import { useS3 } from '../helpers/s3.ts';
import { until } from '../helpers/until.ts';


test('replicas on PostgreSQL and S3 serve what any of them (or the CLI) changes within a second, and share grants and the jobs', async (t) => {
  const work = await tempDir(t);
  const database = await freshDatabase();
  const blobStore = await useS3();
  const identity = await sharedIdentity(work);
  const shared = { database, blobStore, s3PathStyle: true, tlsCert: join(work, 'server.crt'), tlsKey: join(work, 'server.key'), processes: 1 };
  const logs = [capturingLogger(), capturingLogger()];
  const replicas = [await serve(t, join(work, 'replica-a'), { ...shared, log: logs[0]!.log }), await serve(t, join(work, 'replica-b'), { ...shared, log: logs[1]!.log })];
  const cli = (args: string[]) => wharfOk(join(work, 'cli'), ['--database', database, '--blob-store', blobStore, '--s3-path-style', ...args]);
  const get = (r: number, path: string, options: Parameters<typeof fetchRaw>[1] = {}) => fetchRaw(replicas[r]!.base + path, { ca: identity.cert, ...options });
  const listed = async (r: number) => (await get(r, '/streams/v1/images.json')).body.toString();

  // Imported by the CLI on another "host": both replicas list it and serve its file.
  const image = await buildUnified(work, { properties: { os: 'Replicated', release: '1' }, seed: 'replicated' });
  const fp = fingerprintFrom(await cli(['image', 'import', image.path, '--alias', 'rep']));
  for (const r of [0, 1]) {
    await until(`replica ${r} lists the import`, async () => ((await listed(r)).includes(fp) ? true : undefined), 1_000);
    const file = await get(r, `/files/${fp}.tar.gz`);
    assert.equal(file.status, 200);
    assert.equal(file.body.length, image.size);
  }

  // Trusted on one, trusted on all: the trust store is the database's.
  const client = await selfsigned.generate([{ name: 'commonName', value: 'admin' }], { keyType: 'ec' });
  await writeFile(join(work, 'admin.crt'), client.cert);
  await cli(['trust', 'add', join(work, 'admin.crt')]);
  const admin = { cert: client.cert, key: client.private };

  // An edit made through replica B shows on replica A; an edit from an old read is refused on either.
  const read = await get(0, `/1.0/images/${fp}`, admin);
  const etag = String(read.headers.etag);
  const patched = await get(1, `/1.0/images/${fp}`, { ...admin, method: 'PATCH', headers: { 'content-type': 'application/json', 'if-match': etag }, body: JSON.stringify({ properties: { team: 'b' } }) });
  assert.equal(patched.status, 200, patched.body.toString());
  const stale = await get(0, `/1.0/images/${fp}`, { ...admin, method: 'PATCH', headers: { 'content-type': 'application/json', 'if-match': etag }, body: JSON.stringify({ properties: { team: 'a' } }) });
  assert.equal(stale.status, 412, 'the ETag replica A handed out is stale once B changed the image');
  assert.equal(JSON.parse((await get(0, `/1.0/images/${fp}`, admin)).body.toString()).metadata.properties.team, 'b');

  // A one-time secret minted on A opens one download, through either replica.
  await wharf(join(work, 'cli'), ['--database', database, '--blob-store', blobStore, '--s3-path-style', 'image', 'edit', fp], { stdin: 'public: false\n' });
  const minted = JSON.parse((await get(0, `/1.0/images/${fp}/secret`, { ...admin, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).body.toString());
  const secret = minted.metadata.metadata.secret as string;
  assert.equal((await get(1, `/1.0/images/${fp}/export?secret=${secret}`)).status, 200, 'used on B');
  assert.equal((await get(0, `/1.0/images/${fp}/export?secret=${secret}`)).status, 404, 'spent, on A too');

  // Deleted through the CLI: gone from both within a second.
  await cli(['image', 'delete', 'rep']);
  for (const r of [0, 1]) await until(`replica ${r} drops the image`, async () => (!(await listed(r)).includes(fp) ? true : undefined), 1_000);

  // The background jobs: one replica of the two runs them.
  const leading = logs.map(({ records }) => records.filter((rec) => rec.msg === 'running the background jobs').length);
  assert.deepEqual(leading.sort(), [0, 1], `exactly one replica leads: ${leading}`);
});

test('PostgreSQL gone: a replica serves what it published and refuses writes as unavailable; back, it recovers by itself', async (t) => {
  const work = await tempDir(t);
  const cluster = await ownCluster();
  const database = cluster.url;
  const data = join(work, 'replica');
  const image = await buildUnified(work, { properties: { os: 'Steady', release: '1' }, seed: 'steady' });
  const fp = fingerprintFrom(await wharfOk(data, ['--database', database, 'image', 'import', image.path, '--alias', 'steady']));
  const admin = await selfsigned.generate([{ name: 'commonName', value: 'admin' }], { keyType: 'ec' });
  await writeFile(join(work, 'admin.crt'), admin.cert);
  await wharfOk(data, ['--database', database, 'trust', 'add', join(work, 'admin.crt')]);
  const server = await serve(t, data, { database, processes: 1 });
  const get = (path: string, options: Parameters<typeof fetchRaw>[1] = {}) => fetchRaw(server.base + path, { ca: server.tls.cert, ...options });
  const edit = (team: string) =>
    get(`/1.0/images/${fp}`, { cert: admin.cert, key: admin.private, method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ properties: { team } }) });
  assert.equal((await edit('before')).status, 200);

  cluster.stop();
  for (const path of ['/streams/v1/images.json', `/files/${fp}.tar.gz`, '/1.0/images?recursion=1', '/readyz']) {
    assert.equal((await get(path)).status, 200, `${path} is served with the database gone`);
  }
  const refused = await edit('during');
  assert.equal(refused.status, 502, refused.body.toString());
  assert.match(JSON.parse(refused.body.toString()).error, /database cannot be reached/);

  cluster.start();
  const deadline = Date.now() + 15_000;
  let status = 0;
  while (status !== 200 && Date.now() < deadline) {
    status = (await edit('after')).status;
    if (status !== 200) await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(status, 200, 'writes work again once the database is back');
  assert.equal(JSON.parse((await get(`/1.0/images/${fp}`, { cert: admin.cert, key: admin.private })).body.toString()).metadata.properties.team, 'after');
});

test('wharf db migrate copies an embedded store into PostgreSQL whole, and only into an empty one', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'embedded');
  const kept = await buildUnified(work, { properties: { os: 'Moved', release: '1' }, seed: 'moved' });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', kept.path, '--alias', 'moved', '--alias', 'moved/latest']));
  const hidden = await buildUnified(work, { name: 'h.tar.gz', properties: { os: 'Hidden', release: '1' }, seed: 'hidden' });
  const privateFp = fingerprintFrom(await wharfOk(data, ['image', 'import', hidden.path, '--private']));
  await wharfOk(data, ['image', 'set-property', 'moved', 'team', 'infra']);
  await wharfOk(data, ['remote', 'add', 'up', 'https://images.example.org']);
  await wharfOk(data, ['mirror', 'add', 'm', 'up', '--keep', '2']);
  const client = await selfsigned.generate([{ name: 'commonName', value: 'admin' }], { keyType: 'ec' });
  await writeFile(join(work, 'admin.crt'), client.cert);
  await wharfOk(data, ['trust', 'add', join(work, 'admin.crt')]);
  // Downloads counted by a server on the embedded store; a webhook's deliveries logged by it.
  const receiver = createServer((_req, res) => res.writeHead(204).end());
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => receiver.close(() => r())));
  await writeFile(join(data, 'config.yaml'), `webhooks:\n  - name: ci\n    url: http://127.0.0.1:${(receiver.address() as AddressInfo).port}/\n    secret: ${'s'.repeat(32)}\n`);
  const embedded = await serve(t, data, { processes: 1 });
  for (let i = 0; i < 3; i++) assert.equal((await fetchRaw(`${embedded.base}/files/${fp}.tar.gz`, { ca: embedded.tls.cert })).status, 200);
  await wharfOk(data, ['image', 'promote', 'moved', '--channel', 'stable']);
  await until('the webhook got the promotion', async () => ((await wharfOk(data, ['webhook', 'deliveries', '--format', 'json'])).includes('image.promoted') ? true : undefined), 10_000);
  await embedded.close(1_000);

  const database = await freshDatabase();
  const moved = await wharfOk(join(work, 'any'), ['--database', database, 'db', 'migrate', '--from', data]);
  assert.match(moved, /Copied .*2 images/);
  const onPostgres = (args: string[]) => wharfOk(join(work, 'any'), ['--database', database, '--blob-store', join(data, 'blobs'), ...args]);
  const listed = JSON.parse(await onPostgres(['image', 'list', '--format', 'json'])) as { fingerprint: string; public: boolean; properties: Record<string, string>; aliases: { name: string }[] }[];
  assert.deepEqual(listed.map((i) => i.fingerprint).sort(), [fp, privateFp].sort());
  const movedImage = listed.find((i) => i.fingerprint === fp)!;
  assert.equal(movedImage.properties.team, 'infra');
  assert.deepEqual(movedImage.aliases.map((a) => a.name).sort(), ['moved', 'moved/latest']);
  assert.equal(listed.find((i) => i.fingerprint === privateFp)!.public, false);
  assert.match(await onPostgres(['remote', 'list']), /up\s+\| https:\/\/images\.example\.org/);
  assert.match(await onPostgres(['mirror', 'list']), /\| m\s+\| up/);
  assert.match(await onPostgres(['trust', 'list']), /admin/);
  assert.match(await onPostgres(['stats', '--format', 'csv']), /^moved:1:.*,3,3,0,0$/m);
  assert.match(await onPostgres(['image', 'verify']), new RegExp(`${fp}: ok`));
  const deliveries = JSON.parse(await onPostgres(['webhook', 'deliveries', '--format', 'json'])) as { webhook: string; type: string; outcome: string }[];
  assert.deepEqual(deliveries.map((d) => [d.webhook, d.type, d.outcome]), [['ci', 'image.promoted', 'delivered']], 'the delivery log moved too');

  const again = await wharf(join(work, 'any'), ['--database', database, 'db', 'migrate', '--from', data]);
  assert.equal(again.code, 73, again.stderr);
  assert.match(again.stderr, /already holds a catalogue .*nothing was copied/);
  assert.equal(JSON.parse(await onPostgres(['image', 'list', '--format', 'json'])).length, 2, 'nothing copied twice');
});
