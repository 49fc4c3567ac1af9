/**
 * The registry's pull-through cache in front of a real registry (Debian's docker-registry, the
 * reference implementation), judged by skopeo and umoci as Incus runs them: the first pull is
 * fetched, verified and kept; 100 parallel requests for a blob make one upstream fetch; with the
 * upstream stopped the cached copy is still served (marked stale); a blob the upstream corrupted is
 * refused and never kept. A counting proxy in front of the upstream says what reached it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { buildOciLayout } from '../fixtures/oci.ts';
import { runProcess, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { trustForContainers } from '../helpers/containers-trust.ts';
import { until } from '../helpers/until.ts';

const missing = ['skopeo', 'umoci', 'docker-registry'].map((tool) => (spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0 ? undefined : `${tool} is not installed (Debian package ${tool})`)).find(Boolean);
const hostArch = process.arch === 'arm64' ? 'arm64' : 'amd64';

test('pull-through cache: verified first pull, one upstream fetch for 100 clients, served with the upstream down, a tampered blob refused', { skip: !process.env.CI && missing }, async (t) => {
  if (missing) assert.fail(`interop tests must run in CI: ${missing}`);
  const work = await tempDir(t);

  // The upstream: docker-registry on a port of its own, behind a proxy that counts requests.
  const upstreamPort = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const storage = join(work, 'upstream');
  await writeFile(join(work, 'registry.yml'), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${upstreamPort}\n`);
  const registry = spawn('docker-registry', ['serve', join(work, 'registry.yml')], { stdio: 'ignore' });
  t.after(() => void registry.kill('SIGKILL'));
  const counted = new Map<string, number>();
  let upstreamUp = true;
  const proxy = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    counted.set(`${req.method} ${path}`, (counted.get(`${req.method} ${path}`) ?? 0) + 1);
    if (!upstreamUp) return void res.writeHead(503).end();
    const forward = httpRequest({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on('error', () => res.writeHead(502).end());
    req.pipe(forward);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => (proxy.closeAllConnections(), proxy.close(() => r()))));
  const upstream = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  await until('docker-registry up', async () => ((await fetchRaw(`http://${upstream}/v2/`)).status === 200 ? true : undefined), 20_000);

  const skopeo = (args: string[]) => runProcess('skopeo', args, { timeoutMs: 120_000 });
  const layout = await buildOciLayout(join(work, 'layout'), { files: { 'etc/motd': 'from upstream\n' } });
  const seeded = await skopeo(['--insecure-policy', 'copy', '--all', '--dest-tls-verify=false', `oci:${layout.dir}:latest`, `docker://${upstream}/tools/app:1`]);
  assert.equal(seeded.code, 0, seeded.stderr);

  // wharf caches it under /v2/up/ (tags checked upstream at every pull: oci_cache_ttl 0).
  const data = join(work, 'data');
  await wharfOk(data, ['oci', 'remote', 'add', 'up', `http://${upstream}`]);
  await writeFile(join(data, 'config.yaml'), 'oci_cache_ttl: 0\n');
  const server = await serve(t, data, { processes: 1 });
  // As on an Incus host: the registry's CA where containers/image looks for it.
  const host = await trustForContainers(t, server);

  const pull = async (into: string) => {
    await mkdir(into, { recursive: true });
    const copied = await skopeo(['--insecure-policy', 'copy', `docker://${host}/up/tools/app:1`, '--remove-signatures', `oci:${join(into, 'oci')}:latest`]);
    assert.equal(copied.code, 0, copied.stderr);
    const unpacked = await runProcess('umoci', ['unpack', '--keep-dirlinks', '--image', join(into, 'oci'), join(into, 'image')]);
    assert.equal(unpacked.code, 0, unpacked.stderr);
    assert.equal(await readFile(join(into, 'image', 'rootfs', 'etc', 'wharf-arch'), 'utf8'), `${hostArch}\n`);
  };
  const inspected = await skopeo(['--insecure-policy', 'inspect', `docker://${host}/up/tools/app:1`]);
  assert.equal(inspected.code, 0, inspected.stderr);
  assert.deepEqual((JSON.parse(inspected.stdout) as { RepoTags: string[] }).RepoTags, ['1'], 'the upstream\'s tags');
  await pull(join(work, 'first'));
  const layer = layout.images[hostArch]!.layer.digest;
  assert.equal(counted.get(`GET /v2/tools/app/blobs/${layer}`), 1, 'the layer came from upstream once');
  const kept = async () => (await readdir(join(data, 'blobs', 'sha256'), { recursive: true })).map((p) => p.split('/').at(-1)!);
  assert.ok((await kept()).includes(layer.slice('sha256:'.length)), 'and is kept');

  // Another platform's layer, asked for by 100 clients at once: one upstream fetch.
  const other = layout.images[hostArch === 'amd64' ? 'arm64' : 'amd64']!.layer;
  // From four loopback addresses: as many clients, each under the server's connections per address.
  const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => fetchRaw(`${server.base}/v2/up/tools/app/blobs/${other.digest}`, { ca: server.tls.cert, localAddress: `127.0.0.${(i % 4) + 1}` })));
  assert.ok(answers.every((a) => a.status === 200 && a.body.length === other.size), 'all 100 got it whole');
  assert.equal(counted.get(`GET /v2/tools/app/blobs/${other.digest}`), 1, 'one upstream fetch for 100 clients');

  // A registry mirror copies tag 2 ahead of time, this host's platform only.
  const second = await buildOciLayout(join(work, 'second-layout'), { files: { 'etc/motd': 'version 2\n' } });
  assert.equal((await skopeo(['--insecure-policy', 'copy', '--all', '--dest-tls-verify=false', `oci:${second.dir}:latest`, `docker://${upstream}/tools/app:2`])).code, 0);
  await wharfOk(data, ['oci', 'mirror', 'add', 'app2', 'up', 'tools/app', '--tag', '2', '--arch', hostArch, '--interval', '0']);
  assert.match(await wharfOk(data, ['oci', 'mirror', 'sync']), /^app2: 1 tags, 2 blobs$/m);
  const otherArch = second.images[hostArch === 'amd64' ? 'arm64' : 'amd64']!;
  assert.equal(counted.get(`GET /v2/tools/app/blobs/${otherArch.layer.digest}`), undefined, 'another platform is not copied');

  // The upstream down: the cached copy is served, marked stale; a second pull still works.
  upstreamUp = false;
  const stale = await fetchRaw(`${server.base}/v2/up/tools/app/manifests/1`, { ca: server.tls.cert, headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
  assert.equal(stale.status, 200);
  assert.match(String(stale.headers.warning), /^110 /);
  assert.equal(stale.headers['docker-content-digest'], layout.index.digest, 'the very bytes upstream had');
  await pull(join(work, 'second'));
  // Tag 2, never pulled before: the mirror had copied it.
  const mirrored = join(work, 'mirrored');
  await mkdir(mirrored);
  assert.equal((await skopeo(['--insecure-policy', 'copy', `docker://${host}/up/tools/app:2`, '--remove-signatures', `oci:${join(mirrored, 'oci')}:latest`])).code, 0);
  upstreamUp = true;

  // A blob the upstream corrupted: refused, nothing kept, the client gets an error.
  const tampered = await buildOciLayout(join(work, 'tampered'), { architectures: [hostArch], files: { 'etc/motd': 'tampered\n' } });
  assert.equal((await skopeo(['--insecure-policy', 'copy', '--dest-tls-verify=false', `oci:${tampered.dir}:latest`, `docker://${upstream}/tools/bad:1`])).code, 0);
  const victim = tampered.images[hostArch]!.layer.digest.slice('sha256:'.length);
  const dataFile = join(storage, 'docker', 'registry', 'v2', 'blobs', 'sha256', victim.slice(0, 2), victim, 'data');
  const bytes = await readFile(dataFile);
  bytes.writeUInt8(bytes.readUInt8(bytes.length >> 1) ^ 0xff, bytes.length >> 1);
  await writeFile(dataFile, bytes);
  const refused = await fetchRaw(`${server.base}/v2/up/tools/bad/blobs/sha256:${victim}`, { ca: server.tls.cert });
  assert.equal(refused.status, 502, refused.body.toString());
  assert.ok(!(await kept()).includes(victim), 'a tampered blob is never kept');
  const failed = await skopeo(['--insecure-policy', 'copy', `docker://${host}/up/tools/bad:1`, '--remove-signatures', `oci:${join(work, 'bad')}:latest`]);
  assert.notEqual(failed.code, 0);
  // /metrics: pulls, hits, misses, the stale answers and what reached the upstream.
  const metrics = (await fetchRaw(`${server.base}/metrics`, { ca: server.tls.cert })).body.toString();
  const value = (name: string) => Number(new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(metrics)?.[1] ?? NaN);
  assert.ok(value('wharf_registry_manifests_total{action="pull"}') >= 4, metrics);
  assert.ok(value('wharf_registry_cache_total{outcome="stale"}') >= 1);
  assert.ok(value('wharf_registry_cache_total{outcome="hit"}') >= 1);
  const fetches = value('wharf_registry_upstream_fetches_total');
  assert.ok(fetches >= 4 && fetches < 20, `upstream fetches: ${fetches}`);
});
