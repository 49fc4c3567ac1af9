/**
 * Scale-out judged by the real clients: three `wharf serve` replicas (processes of their own) on
 * one PostgreSQL and one S3 bucket (a real OpenStack Swift), behind HAProxy in TCP mode (so client
 * certificates reach wharf), and the CLI on a fourth data directory as another host. The real
 * `incus` lists, copies and launches through the balancer while images are imported and deleted
 * elsewhere; the real `lxc` uses the same address as an LXD-protocol remote; a replica killed
 * with SIGKILL leaves the others serving everything, and a one-time secret opens one download
 * however many replicas are asked at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, freePort, sharedIdentity, tempDir, wharf } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { freshDatabase } from '../helpers/postgres.ts';
import { s3Bucket } from '../helpers/s3.ts';
import { until } from '../helpers/until.ts';
import { spawnReplicas } from '../helpers/replicas.ts';
import { incusUnavailable, prepareForInstances, startIncus } from '../helpers/incus.ts';
import { lxdUnavailable, startLxd } from '../helpers/lxd.ts';

const missing = incusUnavailable() ?? lxdUnavailable() ?? (process.getuid?.() === 0 ? undefined : 'needs root');


test('three replicas behind HAProxy: real incus and lxc list, copy and launch while images come and go, and one replica dies', { skip: !process.env.CI && missing }, async (t) => {
  if (missing) assert.fail(`interop tests must run in CI: ${missing}`);
  const work = await tempDir(t);
  const database = await freshDatabase();
  const s3 = await s3Bucket();
  const identity = await sharedIdentity(work);
  const env = { ...s3.env, WHARF_DATABASE: database, WHARF_BLOB_STORE: s3.url, WHARF_S3_PATH_STYLE: 'true', WHARF_TLS_CERT: join(work, 'server.crt'), WHARF_TLS_KEY: join(work, 'server.key'), WHARF_SERVE_PROCESSES: '1' };
  // The replicas offload artifact downloads to the object store (presigned redirects); the CLI has no say.
  const served = { ...env, WHARF_BLOB_REDIRECT: 'true' };
  const cli = (args: string[], stdin?: string) => wharf(join(work, 'cli'), args, { env, ...(stdin !== undefined ? { stdin } : {}) });
  const cliOk = async (args: string[]) => {
    const r = await cli(args);
    if (r.code !== 0) throw new Error(`wharf ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  // An image before the replicas start: the bucket and the schema are made by the CLI.
  const meta = await buildMetadataTarball(work, { properties: { os: 'Balanced', release: '1', architecture: 'amd64' } });
  const root = await buildSquashfs(work, { seed: 'balanced', padMiB: 2 });
  const first = fingerprintFrom(await cliOk(['image', 'import', meta.path, root.path, '--alias', 'balanced']));

  const { ports, processes: replicas, ready } = await spawnReplicas(t, work, served);
  for (const i of ports.keys()) await ready(i, identity.cert, 15_000);

  // HAProxy in TCP mode: TLS goes through to wharf, so trusted client certificates keep working.
  const balancer = await freePort();
  await writeFile(
    join(work, 'haproxy.cfg'),
    `global\n  maxconn 256\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  retries 3\n  option redispatch\n` +
      `frontend wharf\n  bind 127.0.0.1:${balancer}\n  default_backend replicas\n` +
      `backend replicas\n  balance roundrobin\n${ports.map((port, i) => `  server r${i} 127.0.0.1:${port} check inter 500 fall 2 rise 2\n`).join('')}`,
  );
  const haproxy = spawn('haproxy', ['-db', '-f', join(work, 'haproxy.cfg')], { stdio: 'ignore' });
  t.after(() => void haproxy.kill('SIGKILL'));
  const base = `https://127.0.0.1:${balancer}`;
  await until('the balancer', async () => ((await fetchRaw(`${base}/readyz`, { ca: identity.cert })).status === 200 ? true : undefined), 15_000);

  const incus = await startIncus(t, [identity.cert]);
  await incus.incusOk(['remote', 'add', 'lb', base, '--protocol=simplestreams']);
  const listed = await incus.incusJson<{ fingerprint: string }[]>(['image', 'list', 'lb:']);
  assert.deepEqual(listed.map((i) => i.fingerprint), [first]);
  // Its files are redirected to the object store: the daemon that copies the image follows.
  const index = (await fetchRaw(`${base}/streams/v1/images.json`, { ca: identity.cert })).body.toString();
  const rootPath = /"path":\s*"(files\/[0-9a-f]{64}\.squashfs)"/.exec(index)?.[1];
  assert.ok(rootPath, index);
  const offloaded = await fetchRaw(`${base}/${rootPath}`, { ca: identity.cert });
  assert.equal(offloaded.status, 302, `the rootfs is redirected: ${offloaded.status}`);
  assert.match(String(offloaded.headers.location), /^http:\/\/127\.0\.0\.1:\d+\/.*X-Amz-Signature=/);
  await incus.incusOk(['image', 'copy', 'lb:balanced', 'local:', '--alias', 'bal']);
  await prepareForInstances(incus);
  await incus.incusOk(['launch', 'local:bal', 'c1']);
  assert.equal((await incus.incusOk(['exec', 'c1', '--', '/bin/cat', '/etc/wharf-seed'])).trim(), 'balanced');
  await incus.incusOk(['delete', '--force', 'c1']);

  // Imported on "another host": every replica lists it within a second, so the balancer does.
  const meta2 = await buildMetadataTarball(work, { name: 'm2.tar.xz', properties: { os: 'Later', release: '2', architecture: 'amd64' } });
  const root2 = await buildSquashfs(work, { name: 's2.squashfs', seed: 'later' });
  const second = fingerprintFrom(await cliOk(['image', 'import', meta2.path, root2.path, '--alias', 'later']));
  await until('every replica lists the new image', async () => {
    const seen = await Promise.all(ports.map(async (port) => (await fetchRaw(`https://127.0.0.1:${port}/streams/v1/images.json`, { ca: identity.cert })).body.toString().includes(second)));
    return seen.every(Boolean) ? true : undefined;
  }, 2_000);

  // The real lxc on the same address, as an LXD-protocol remote.
  const lxd = await startLxd(t, [identity.cert]);
  await lxd.lxcOk(['remote', 'add', 'lbapi', base, '--public', '--accept-certificate']);
  const viaApi = await lxd.lxcJson<{ fingerprint: string }[]>(['image', 'list', 'lbapi:']);
  assert.deepEqual(viaApi.map((i) => i.fingerprint).sort(), [first, second].sort());
  await lxd.lxcOk(['image', 'copy', 'lbapi:later', 'local:', '--alias', 'later-api']);
  // And as a simplestreams remote: LXD's daemon follows the redirects to the object store too
  // (the copy above deleted first, or LXD would not download it again).
  await lxd.lxcOk(['image', 'delete', 'local:later-api']);
  await lxd.lxcOk(['remote', 'add', 'lbss', base, '--protocol=simplestreams']);
  await lxd.lxcOk(['image', 'copy', 'lbss:later', 'local:', '--alias', 'later-ss']);
  const copiedByLxd = await lxd.lxcJson<{ fingerprint: string; aliases: { name: string }[] }[]>(['image', 'list', 'local:']);
  assert.equal(copiedByLxd.find((i) => i.aliases.some((a) => a.name === 'later-ss'))?.fingerprint, second);

  // A one-time secret, minted through one replica, asked for through all three at once: one download.
  const admin = await selfsigned.generate([{ name: 'commonName', value: 'admin' }], { keyType: 'ec' });
  await writeFile(join(work, 'admin.crt'), admin.cert);
  await cliOk(['trust', 'add', join(work, 'admin.crt')]);
  await cli(['image', 'edit', second], 'public: false\n');
  const minted = JSON.parse(
    (await fetchRaw(`https://127.0.0.1:${ports[0]}/1.0/images/${second}/secret`, { ca: identity.cert, cert: admin.cert, key: admin.private, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).body.toString(),
  );
  const secret = minted.metadata.metadata.secret as string;
  const downloads = await Promise.all(ports.map((port) => fetchRaw(`https://127.0.0.1:${port}/1.0/images/${second}/export?secret=${secret}`, { ca: identity.cert })));
  assert.deepEqual(downloads.map((d) => d.status).filter((s) => s === 200), [200], `statuses: ${downloads.map((d) => d.status)}`);

  // One replica dies: the balancer's checks drop it, and the clients go on through the others.
  replicas[1]!.kill('SIGKILL');
  await once(replicas[1]!, 'exit');
  await cliOk(['image', 'delete', 'later']);
  // (Through the API: the clients keep a simplestreams index they read for a while.)
  await until('the delete is seen through the balancer', async () => {
    const list = await lxd.lxcJson<{ fingerprint: string }[]>(['image', 'list', 'lbapi:']);
    return list.some((i) => i.fingerprint === second) ? undefined : true;
  }, 15_000);
  await incus.incusOk(['image', 'delete', 'local:bal']);
  await incus.incusOk(['image', 'copy', 'lb:balanced', 'local:', '--alias', 'bal-again']);
  const again = await incus.incusJson<{ fingerprint: string; aliases: { name: string }[] }[]>(['image', 'list', 'local:']);
  assert.equal(again.find((i) => i.aliases.some((a) => a.name === 'bal-again'))?.fingerprint, first);
});
