/**
 * Replicas that die: three `wharf serve` processes on one PostgreSQL and one S3 bucket (a real
 * OpenStack Swift), as on three hosts. The one running the background jobs is killed with
 * SIGKILL in the middle of a mirror sync, and another one mid-upload: nothing half-written is
 * listed or stored under a blob's name, the sync is taken over and finished by a survivor, and the
 * upload, sent again to a survivor, lands whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import selfsigned from 'selfsigned';
import { buildMetadataTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, sharedIdentity, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { startFaultServer } from '../helpers/fault-server.ts';
import { freshDatabase } from '../helpers/postgres.ts';
import { s3Bucket } from '../helpers/s3.ts';
import { until } from '../helpers/until.ts';
import { spawnReplicas } from '../helpers/replicas.ts';
import { s3Location } from '../../src/blob/s3-location.ts';
import { S3BlobDriver } from '../../src/blob/s3.ts';
import { Blobs } from '../../src/blob/store.ts';


test('replicas killed with SIGKILL mid-sync and mid-upload: nothing half-written is served, the sync resumes on a survivor, the upload lands when sent again', async (t) => {
  const work = await tempDir(t);
  const database = await freshDatabase();
  const s3 = await s3Bucket();
  const identity = await sharedIdentity(work);
  const env = { ...s3.env, WHARF_DATABASE: database, WHARF_BLOB_STORE: s3.url, WHARF_S3_PATH_STYLE: 'true', WHARF_TLS_CERT: join(work, 'server.crt'), WHARF_TLS_KEY: join(work, 'server.key'), WHARF_SERVE_PROCESSES: '1' };
  const cliOk = async (args: string[], data = join(work, 'cli')) => {
    const r = await wharf(data, args, { env });
    if (r.code !== 0) throw new Error(`wharf ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  // The upstream: a tree exported by another wharf, its rootfs sent slowly (a sync that lasts).
  const source = join(work, 'source');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Upstream', release: '1', architecture: 'amd64' } });
  const root = await buildSquashfs(work, { seed: 'upstream', padMiB: 3 });
  const upstreamFp = fingerprintFrom(await wharfOk(source, ['image', 'import', meta.path, root.path]));
  await wharfOk(source, ['tree', 'export', join(work, 'tree')]);
  const index = JSON.parse(await readFile(join(work, 'tree', 'streams/v1/images.json'), 'utf8')) as { products: Record<string, { versions: Record<string, { items: Record<string, { path: string }> }> }> };
  const rootPath = Object.values(Object.values(index.products)[0]!.versions)[0]!.items['root.squashfs']!.path;
  const upstream = await startFaultServer(join(work, 'tree'), { cert: identity.cert, key: identity.key });
  t.after(() => upstream.close());
  upstream.faults.set(rootPath, 'slow');
  await cliOk(['remote', 'add', 'up', upstream.base, '--public', '--certificate', join(work, 'server.crt')]);
  // Never synced: due as soon as a replica runs the jobs.
  await cliOk(['mirror', 'add', 'm', 'up', '--interval', '1h']);

  const { ports, processes: replicas, logs, ready } = await spawnReplicas(t, work, env);
  const leader = () => logs.findIndex((log, i) => replicas[i]!.exitCode === null && replicas[i]!.signalCode === null && log.includes('running the background jobs'));
  const get = (i: number, path: string) => fetchRaw(`https://127.0.0.1:${ports[i]}${path}`, { ca: identity.cert });
  const lists = async (i: number, fp: string) => (await get(i, '/streams/v1/images.json')).body.toString().includes(fp);

  // Mid-sync: the process running the jobs dies as its rootfs download begins.
  let killed = -1;
  upstream.beforeEach = async (path) => {
    if (path !== rootPath || killed >= 0) return;
    killed = await until('a replica leads', async () => (leader() >= 0 ? leader() : undefined), 5_000);
    replicas[killed]!.kill('SIGKILL');
    await once(replicas[killed]!, 'exit');
  };
  await until('the first sync reaches the rootfs', async () => (killed >= 0 ? true : undefined), 60_000);
  const survivors = [0, 1, 2].filter((i) => i !== killed);
  for (const i of survivors) await ready(i, identity.cert);
  for (const i of survivors) assert.equal(await lists(i, upstreamFp), false, 'nothing of a sync cut in the middle is listed');
  // Another replica takes the jobs over (the lease expires within 30 s) and finishes the sync.
  for (const i of survivors) await until(`replica ${i} lists the mirrored image`, async () => ((await lists(i, upstreamFp)) ? true : undefined), 90_000);
  assert.equal(leader() >= 0 && leader() !== killed, true, 'a survivor runs the jobs');
  const served = await get(survivors[0]!, '/streams/v1/images.json');
  const servedPath = /"path":\s*"(files\/[0-9a-f]{64}\.squashfs)"/.exec(served.body.toString())?.[1];
  const file = await get(survivors[1]!, `/${servedPath}`);
  assert.equal(file.status, 200);
  assert.equal(createHash('sha256').update(file.body).digest('hex'), root.sha256, 'the mirrored rootfs whole');

  // Mid-upload: a trusted client's upload to a survivor that dies half-way through the body.
  const admin = await selfsigned.generate([{ name: 'commonName', value: 'admin' }], { keyType: 'ec' });
  await writeFile(join(work, 'admin.crt'), admin.cert);
  await cliOk(['trust', 'add', join(work, 'admin.crt')]);
  const unified = await buildUnified(work, { properties: { os: 'Pushed', release: '1', architecture: 'amd64' }, seed: 'pushed' });
  const bytes = await readFile(unified.path);
  const [victim, last] = survivors as [number, number];
  const upload = request(`https://127.0.0.1:${ports[victim]}/1.0/images`, { method: 'POST', ca: identity.cert, cert: admin.cert, key: admin.private, headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) } });
  const failed = new Promise<Error>((resolve) => {
    upload.on('error', resolve);
    upload.on('response', (res) => resolve(new Error(`answered ${res.statusCode}`)));
  });
  upload.write(bytes.subarray(0, bytes.length >> 1));
  await sleep(500);
  replicas[victim]!.kill('SIGKILL');
  await once(replicas[victim]!, 'exit');
  assert.doesNotMatch((await failed).message, /answered/, 'the upload was cut, not answered');
  const images = JSON.parse(await cliOk(['image', 'list', '--format', 'json'])) as { fingerprint: string }[];
  assert.deepEqual(images.map((i) => i.fingerprint), [upstreamFp], 'the cut upload left no image');

  // Nothing stored under a blob's name is short or wrong: every blob reads back as its sha256.
  Object.assign(process.env, s3.env);
  const blobs = new Blobs(new S3BlobDriver(s3Location(s3.url)!, { pathStyle: true }));
  t.after(() => blobs.close());
  for await (const blob of blobs.list()) {
    const read = createHash('sha256');
    for await (const chunk of await blobs.openRead(blob.sha256)) read.update(chunk as Buffer);
    assert.equal(read.digest('hex'), blob.sha256, `blob ${blob.sha256} is whole`);
  }

  // Sent again to the last replica: it lands whole, and is served.
  const again = await fetchRaw(`https://127.0.0.1:${ports[last]}/1.0/images`, { ca: identity.cert, cert: admin.cert, key: admin.private, method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bytes });
  assert.ok([200, 202].includes(again.status), again.body.toString());
  await until('the upload is listed', async () => (JSON.parse(await cliOk(['image', 'list', '--format', 'json'])).some((i: { fingerprint: string }) => i.fingerprint === unified.sha256) ? true : undefined), 30_000);
  const exported = await fetchRaw(`https://127.0.0.1:${ports[last]}/1.0/images/${unified.sha256}/export`, { ca: identity.cert, cert: admin.cert, key: admin.private });
  assert.equal(exported.status, 200);
  assert.equal(createHash('sha256').update(exported.body).digest('hex'), unified.sha256);
});
