/**
 * What an operator relies on: /healthz and /readyz, /metrics summed over the serving processes
 * and moving with what happens (requests, imports, mirror fills), a SIGTERM that lets downloads
 * in progress finish (and counts them), and SIGHUP picking up a new log level.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, freePort, serve, tempDir, wharfBin, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One sample of a metric (with its labels exactly as written), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function importImage(work: string, data: string, name: string, padMiB = 1) {
  const meta = await buildMetadataTarball(work, { properties: { os: name, release: '1', architecture: 'amd64' } });
  const rootfs = await buildSquashfs(work, { seed: name, padMiB });
  const fingerprint = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, rootfs.path]));
  return { fingerprint, rootfs };
}

test('/healthz, /readyz and /metrics: counted over both serving processes, moving with requests and imports', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const { rootfs } = await importImage(work, data, 'Alpha');
  const server = await serve(t, data, { processes: 2, http: true });
  const http = `http://127.0.0.1:${server.httpPort}`;
  const get = (path: string) => fetchRaw(server.base + path, { ca: server.tls.cert, headers: { connection: 'close' } });

  assert.equal((await get('/healthz')).status, 200);
  const ready = await fetchRaw(`${http}/readyz`);
  assert.equal(ready.status, 200, 'probes may use plain HTTP');
  assert.equal(ready.body.toString(), 'ready\n');

  const before = (await get('/metrics')).body.toString();
  assert.equal(sample(before, 'wharf_images{visibility="public"}'), 1);
  assert.ok((sample(before, 'wharf_store_bytes') ?? 0) >= rootfs.size);
  const downloadsBefore = sample(before, 'wharf_http_requests_total{route="artifact",status="200"}') ?? 0;
  const handshakesBefore = sample(before, 'wharf_tls_handshakes_total') ?? 0;

  // Ten downloads on new connections: the kernel spreads them over both processes.
  const path = `/files/${rootfs.sha256}.squashfs`;
  for (let i = 0; i < 10; i++) {
    const res = await fetchRaw(`${http}${path}`, { headers: { connection: 'close' } });
    assert.equal(res.status, 200);
  }
  assert.equal((await fetchRaw(`${http}/files/${'0'.repeat(64)}.squashfs`, { headers: { connection: 'close' } })).status, 404);
  await wharfOk(data, ['image', 'import', ...(await (async () => {
    const meta = await buildMetadataTarball(work, { properties: { os: 'Beta', release: '1', architecture: 'amd64' } });
    const root = await buildSquashfs(work, { seed: 'beta', padMiB: 1 });
    return [meta.path, root.path];
  })())]);
  await sleep(500);

  const after = (await get('/metrics')).body.toString();
  assert.equal(sample(after, 'wharf_http_requests_total{route="artifact",status="200"}'), downloadsBefore + 10, after);
  assert.equal(sample(after, 'wharf_http_requests_total{route="artifact",status="404"}'), 1);
  assert.ok(sample(after, 'wharf_http_response_bytes_total{route="artifact"}')! >= 10 * rootfs.size);
  assert.ok(sample(after, 'wharf_tls_handshakes_total')! > handshakesBefore);
  assert.equal(sample(after, 'wharf_images{visibility="public"}'), 2, 'an import made by the CLI shows');
  assert.ok(sample(after, 'wharf_index_renders_total')! >= 2);
  assert.match(after, /^# TYPE wharf_http_requests_total counter$/m);
  assert.match(after, /^wharf_process_resident_memory_bytes \d+/m);
});

test('metrics_listen: /metrics of every serving process on a listener of its own, none on the serving ports', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const { rootfs } = await importImage(work, data, 'Delta');
  const server = await serve(t, data, { processes: 2, http: true, metricsListen: '127.0.0.1:0' });
  assert.ok(server.metricsPort);
  for (let i = 0; i < 6; i++) assert.equal((await fetchRaw(`http://127.0.0.1:${server.httpPort}/files/${rootfs.sha256}.squashfs`, { headers: { connection: 'close' } })).status, 200);
  // On the serving ports, even from loopback (a reverse proxy on this host would relay anyone): none.
  assert.equal((await fetchRaw(`${server.base}/metrics`, { ca: server.tls.cert })).status, 404);
  assert.equal((await fetchRaw(`http://127.0.0.1:${server.httpPort}/metrics`)).status, 404);
  const scraped = await fetchRaw(`http://127.0.0.1:${server.metricsPort}/metrics`);
  assert.equal(scraped.status, 200);
  assert.equal(sample(scraped.body.toString(), 'wharf_http_requests_total{route="artifact",status="200"}'), 6, 'summed over both processes');
  assert.equal((await fetchRaw(`http://127.0.0.1:${server.metricsPort}/readyz`)).status, 200);
  assert.equal((await fetchRaw(`http://127.0.0.1:${server.metricsPort}/files/${rootfs.sha256}.squashfs`)).status, 404, 'nothing else is served there');
});

test('a mirror counts its hits, misses and the bytes it filled', async (t) => {
  const work = await tempDir(t);
  const originData = join(work, 'origin');
  const { rootfs } = await importImage(work, originData, 'Gamma', 2);
  const origin = await serve(t, originData, { processes: 1 });
  await writeFile(join(work, 'origin.crt'), origin.tls.cert);
  const mirror = await serve(t, join(work, 'mirror'), { processes: 1, mirrorOf: origin.base, originCertificate: join(work, 'origin.crt') });
  const path = `/files/${rootfs.sha256}.squashfs`;
  for (let i = 0; i < 3; i++) {
    const res = await fetchRaw(mirror.base + path, { ca: mirror.tls.cert });
    assert.equal(res.status, 200);
    assert.equal(createHash('sha256').update(res.body).digest('hex'), rootfs.sha256);
  }
  // A request is counted once its response closed, which the server may see a moment after the
  // client has the last byte: /metrics is read until the third download shows (or 5 s passed).
  let text = '';
  for (const started = Date.now(); Date.now() - started < 5000; await sleep(50)) {
    text = (await fetchRaw(`${mirror.base}/metrics`, { ca: mirror.tls.cert })).body.toString();
    if (sample(text, 'wharf_http_requests_total{route="artifact",status="200"}') === 3) break;
  }
  assert.equal(sample(text, 'wharf_cache_misses_total'), 1, text);
  assert.equal(sample(text, 'wharf_cache_hits_total'), 2);
  assert.equal(sample(text, 'wharf_cache_fill_bytes_total'), rootfs.size);
  assert.equal(sample(text, 'wharf_cache_files'), 1);
  assert.equal(sample(text, 'wharf_http_requests_total{route="artifact",status="200"}'), 3);
  assert.equal((await fetchRaw(`${mirror.base}/readyz`, { ca: mirror.tls.cert })).status, 200);
});

/** `wharf serve` as a real process, as systemd runs it. */
async function serveProcess(
  t: { after(fn: () => Promise<void>): void },
  data: string,
): Promise<{ child: ChildProcess; port: number; stderr: () => string; exited: Promise<[number | null, NodeJS.Signals | null]> }> {
  const port = await freePort();
  const child = spawn(wharfBin, ['--data-dir', data, 'serve', '--https', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  // Listened for from the start: a server that exits before a test awaits it must not hang the test
  // (it did, in a clean-clone run, where the server finished faster than the test's checks).
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  for (let i = 0; !stderr.includes('wharf is serving'); i++) {
    if (child.exitCode !== null || i > 300) throw new Error(`wharf serve did not start:\n${stderr}`);
    await sleep(100);
  }
  return { child, port, stderr: () => stderr, exited };
}

test('SIGTERM during 5 downloads lets every one finish, refuses new connections, then exits 0', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const { fingerprint, rootfs } = await importImage(work, data, 'Delta', 48);
  const { child, port, exited } = await serveProcess(t, data);

  // Five downloads whose readers stall: the server is mid-body on each when the signal comes.
  const downloads = await Promise.all(
    Array.from({ length: 5 }, async () => {
      const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
      await once(socket, 'secureConnect');
      const chunks: Buffer[] = [];
      const first = once(socket, 'data');
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.write(`GET /files/${rootfs.sha256}.squashfs HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      await first;
      socket.pause();
      return { socket, chunks, ended: once(socket, 'end') };
    }),
  );
  child.kill('SIGTERM');
  await sleep(500);
  assert.equal(child.exitCode, null, 'still serving the downloads in progress');
  await assert.rejects(fetchRaw(`https://127.0.0.1:${port}/healthz`, { insecure: true }), 'no new connections');

  for (const d of downloads) d.socket.resume();
  await Promise.all(downloads.map((d) => d.ended));
  for (const d of downloads) {
    const response = Buffer.concat(d.chunks);
    const split = response.indexOf('\r\n\r\n');
    assert.match(response.subarray(0, split).toString(), /^HTTP\/1\.1 200/);
    assert.equal(createHash('sha256').update(response.subarray(split + 4)).digest('hex'), rootfs.sha256, 'the whole file');
  }
  const [code] = await exited;
  assert.equal(code, 0);
  // Counted while stopping, flushed before the exit: the five downloads are in the statistics.
  const stats = JSON.parse(await wharfOk(data, ['stats', '--by', 'image', '--format', 'json'])) as { fingerprint: string; downloads: number }[];
  assert.deepEqual(stats.map((s) => [s.fingerprint, s.downloads]), [[fingerprint, 5]]);
});

test('SIGHUP reads the log level again: access lines appear once the config says info', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  await importImage(work, data, 'Echo');
  await writeFile(join(data, 'config.yaml'), 'log_level: warn\n');
  const { child, port, stderr } = await serveProcess(t, data);
  const hit = () => fetchRaw(`https://127.0.0.1:${port}/healthz`, { insecure: true, headers: { connection: 'close' } });
  await hit();
  await sleep(300);
  assert.doesNotMatch(stderr(), /"path":"\/healthz"/);

  await writeFile(join(data, 'config.yaml'), 'log_level: info\n');
  child.kill('SIGHUP');
  for (let i = 0; !stderr().includes('log level set'); i++) {
    if (i > 50) throw new Error(`no reload:\n${stderr()}`);
    await sleep(100);
  }
  // Every serving process hears of it: enough requests on new connections to reach both.
  for (let i = 0; i < 6; i++) await hit();
  await sleep(300);
  const lines = stderr().split('\n').filter((l) => l.includes('"path":"/healthz"'));
  assert.equal(lines.length, 6, stderr());

  // A broken config file changes nothing and says so.
  await writeFile(join(data, 'config.yaml'), 'log_level: loud\n');
  child.kill('SIGHUP');
  for (let i = 0; !stderr().includes('cannot read the settings again'); i++) {
    if (i > 50) throw new Error(`no complaint:\n${stderr()}`);
    await sleep(100);
  }
  await hit();
  await sleep(300);
  assert.equal(stderr().split('\n').filter((l) => l.includes('"path":"/healthz"')).length, 7);
});

test('a download stalled past shutdown_timeout is cut, and the server still exits', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const { rootfs } = await importImage(work, data, 'Foxtrot', 48);
  await writeFile(join(data, 'config.yaml'), 'shutdown_timeout: 1s\n');
  const { child, port, exited } = await serveProcess(t, data);
  const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  socket.on('error', () => {});
  await once(socket, 'secureConnect');
  const first = once(socket, 'data');
  socket.write(`GET /files/${rootfs.sha256}.squashfs HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  await first;
  socket.pause();
  const started = Date.now();
  child.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0);
  const took = Date.now() - started;
  assert.ok(took >= 900 && took < 8000, `exited after ${took} ms`);
  socket.destroy();
});
