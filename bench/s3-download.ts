/**
 * Benchmark 15: downloading the 1 GiB rootfs stored in S3 (a real OpenStack Swift with s3api on
 * this machine, as the tests run it), with curl, three ways: through wharf's redirect to a
 * presigned URL (`--blob-redirect`, curl -L), proxied through wharf over HTTPS (a second wharf on
 * the same store without it), and straight from the engine (the same presigned URL, fetched
 * directly: the reference). Three runs each, alternating; medians of the whole download's speed.
 * Targets (issue 24): redirect >= 0.9x the direct GET, proxied >= 0.8x (over HTTPS with the TLS
 * 1.3 suite the real clients negotiate; curl's own choice beside it). Beside them: proxied over
 * plain HTTP, and a bare node:https server piping the engine's GET to the client (the floor of
 * proxying in this runtime, same certificate).
 */
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { once } from 'node:events';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { s3Bucket } from '../test/helpers/s3.ts';
import { bigImage, fingerprintFrom, median, MiB, removeDir, report, requireCommands, runOk, sleep, squashfsPath, startWharf, tempDir, warm, wharfBin, type WharfServer } from './lib.ts';

const runs = 3;
requireCommands('curl', 'mksquashfs');

const work = await tempDir('s3-download');
const servers: WharfServer[] = [];
try {
  const image = await bigImage(join(work, 'fixture'));
  await warm(image.meta, image.rootfs);
  const { env, url } = await s3Bucket();
  const s3 = { ...env, WHARF_BLOB_STORE: url, WHARF_S3_PATH_STYLE: 'true' };
  const data = join(work, 'data');
  fingerprintFrom((await runOk(wharfBin, ['--data-dir', data, 'image', 'import', image.meta, image.rootfs], { timeoutMs: 600_000, env: { ...process.env, ...s3 } })).stdout);
  const redirecting = await startWharf(data, wharfBin, { args: ['--blob-redirect'], env: s3 });
  servers.push(redirecting);
  // Another server on the same store (and catalogue), without the redirects.
  const proxying = await startWharf(data, wharfBin, { env: s3 });
  servers.push(proxying);
  const cacert = join(data, 'server.crt');

  const index = await runOk('curl', ['-s', '-f', '--cacert', cacert, `${redirecting.base}/streams/v1/images.json`]);
  const path = squashfsPath(Buffer.from(index.stdout));
  const rootfsSize = (await stat(image.rootfs)).size;

  // The rootfs is stored in its upload's parts: the first download asks for its consolidation.
  const location = async () => (await runOk('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '--cacert', cacert, `${redirecting.base}/${path}`], { timeoutMs: 310_000 })).stdout.trim().split(' ');
  const consolidating = performance.now();
  for (;;) {
    const [code, to] = await location();
    if (code === '302' && to) break;
    if (performance.now() - consolidating > 600_000) throw new Error('the rootfs was not consolidated within 10 minutes');
    await sleep(1000);
  }
  console.log(`consolidated for redirects after ${((performance.now() - consolidating) / 1000).toFixed(1)} s (first download served by wharf meanwhile)`);

  /**
   * MiB/s of a whole download; `follow`: curl follows the redirect (from wharf to the engine);
   * `goSuite`: the TLS 1.3 suite LXD and Incus negotiate (Go puts TLS_AES_128_GCM_SHA256 first
   * where the CPU has AES instructions; curl, through OpenSSL, asks for AES-256 first).
   */
  const curl = async (target: string, follow = false, goSuite = false): Promise<number> => {
    const suite = goSuite ? ['--tls13-ciphers', 'TLS_AES_128_GCM_SHA256'] : [];
    const out = await runOk('curl', ['-s', '-f', ...(follow ? ['-L'] : []), ...suite, '--max-time', '300', '--cacert', cacert, '-o', '/dev/null', '-w', '%{time_total} %{size_download}', target], { timeoutMs: 310_000 });
    const [seconds, got] = out.stdout.trim().split(' ').map(Number) as [number, number];
    if (got !== rootfsSize) throw new Error(`short download from ${target}: ${got} bytes`);
    return rootfsSize / MiB / seconds;
  };
  // The floor of proxying: a bare node:https server (same certificate) piping a GET of the engine's to the client.
  const bare = createServer({ cert: readFileSync(cacert), key: readFileSync(join(data, 'server.key')) }, (req, res) => {
    void location().then(([, from]) =>
      httpGet(from!, (upstream) => {
        res.writeHead(200, { 'content-length': upstream.headers['content-length'] ?? '' });
        upstream.pipe(res);
      }),
    );
  });
  bare.listen(0, '127.0.0.1');
  await once(bare, 'listening');
  const barePort = (bare.address() as AddressInfo).port;
  const cases: Record<string, () => Promise<number>> = {
    'direct GET from the engine': async () => curl((await location())[1]!),
    'wharf redirect, followed': () => curl(`${redirecting.base}/${path}`, true),
    'proxied through wharf (HTTPS)': () => curl(`${proxying.base}/${path}`),
    'proxied through wharf (HTTPS, the suite Go clients negotiate)': () => curl(`${proxying.base}/${path}`, false, true),
    'proxied through wharf (plain HTTP)': () => curl(`http://127.0.0.1:${proxying.httpPort}/${path}`),
    'bare node:https proxy': () => curl(`https://127.0.0.1:${barePort}/${path}`),
  };
  // One unmeasured download each first (JIT, buffers, the engine's caches), alike for all.
  for (const run of Object.values(cases)) await run();
  const speeds: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < runs; i++) {
    for (const [name, run] of Object.entries(cases)) speeds[name]!.push(await run());
    console.log(`run ${i + 1}: ` + Object.entries(speeds).map(([k, v]) => `${k} ${v[i]!.toFixed(0)} MiB/s`).join(', '));
  }
  const m = (k: string) => median(speeds[k]!);
  report('15 download of a 1 GiB artifact stored in S3 (Swift + s3api), curl, median of 3', [
    { name: 'redirect to a presigned URL', wharf: m('wharf redirect, followed'), reference: m('direct GET from the engine'), referenceName: 'direct GET from the engine', unit: 'MiB/s', target: '>= 0.9x', pass: (r) => r >= 0.9 },
    { name: 'proxied through wharf, HTTPS (TLS_AES_128_GCM_SHA256, as LXD and Incus)', wharf: m('proxied through wharf (HTTPS, the suite Go clients negotiate)'), reference: m('direct GET from the engine'), referenceName: 'direct GET from the engine', unit: 'MiB/s', target: '>= 0.8x', pass: (r) => r >= 0.8 },
    { name: "proxied through wharf, HTTPS (curl's own choice, AES-256-GCM)", wharf: m('proxied through wharf (HTTPS)'), reference: m('direct GET from the engine'), referenceName: 'direct GET from the engine', unit: 'MiB/s', target: '-', pass: () => true, context: true },
    { name: 'proxied through wharf, plain HTTP', wharf: m('proxied through wharf (plain HTTP)'), reference: m('direct GET from the engine'), referenceName: 'direct GET from the engine', unit: 'MiB/s', target: '-', pass: () => true, context: true },
    { name: 'proxied through wharf, HTTPS', wharf: m('proxied through wharf (HTTPS)'), reference: m('bare node:https proxy'), referenceName: 'bare node:https proxy', unit: 'MiB/s', target: '-', pass: () => true, context: true },
  ]);
  bare.close();
} finally {
  for (const server of servers.reverse()) await server.stop();
  await removeDir(work);
}
