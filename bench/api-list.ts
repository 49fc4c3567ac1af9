/**
 * `GET /1.0/images?recursion=1` (the LXD REST view's image list, what `lxc image list REMOTE:`
 * asks for) on a 1,000-image store: requests per second from wharf against nginx serving the very
 * same response bytes from a file (saved from wharf's response), both over HTTPS (TLS 1.3, wharf's
 * own certificate and key), driven by `wrk -t2 -c20 -d10s` after a 2 s warm-up of each. The
 * client is untrusted (no client certificate), as with `lxc remote add --public`: all 1,000
 * images are public, so it sees them all. Target: wharf >= 0.5x nginx.
 *
 * The store is bench/store.ts's (100 products x 10 versions, one shared tiny squashfs).
 * WHARF_BENCH_IMAGES overrides the image count (for a quick check of the script).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildStore, tinySquashfs } from './store.ts';
import { httpsClient, removeDir, report, requireCommands, startNginx, startWharf, tempDir, wrk, type WrkResult } from './lib.ts';

const images = Number(process.env.WHARF_BENCH_IMAGES ?? 1000);
const duration = '10s';
requireCommands('wrk', 'nginx', 'mksquashfs');

const work = await tempDir('api-list');
const stops: Array<() => Promise<void>> = [];
try {
  const data = join(work, 'data');
  const store = await buildStore(data, images, await tinySquashfs(work));
  await store.meta.close();

  const wharf = await startWharf(data);
  stops.push(wharf.stop);
  const path = '/1.0/images?recursion=1';
  const url = `${wharf.base}${path}`;
  const client = httpsClient(wharf.ca);
  const first = await client.get(url);
  client.close();
  if (first.status !== 200) throw new Error(`${url}: HTTP ${first.status}: ${first.body.toString().slice(0, 300)}`);
  const doc = JSON.parse(first.body.toString()) as { metadata: { fingerprint: string }[] };
  if (doc.metadata.length !== images) throw new Error(`${path} lists ${doc.metadata.length} images, expected ${images}`);
  console.log(`${path}: ${first.body.length} bytes, ${doc.metadata.length} images, content-encoding ${first.headers['content-encoding'] ?? 'identity'}`);

  // nginx serves the same bytes at the same path (a static file ignores the query string).
  const root = join(work, 'www');
  await mkdir(join(root, '1.0'), { recursive: true });
  await writeFile(join(root, '1.0', 'images'), first.body);
  const nginx = await startNginx(join(work, 'nginx'), root, { cert: join(data, 'server.crt'), key: join(data, 'server.key') });
  stops.push(nginx.stop);
  const nginxUrl = `https://127.0.0.1:${nginx.httpsPort}${path}`;
  const check = httpsClient(wharf.ca);
  const same = await check.get(nginxUrl);
  check.close();
  if (!same.body.equals(first.body)) throw new Error('nginx does not serve the same bytes');

  const results: Record<string, WrkResult> = {};
  for (const [name, target] of [
    ['wharf', url],
    ['nginx', nginxUrl],
  ] as const) {
    await wrk(target, '2s');
    results[name] = await wrk(target, duration);
    console.log(`${name}: ${results[name].rps.toFixed(1)} req/s, mean latency ${results[name].latency}, ${results[name].transfer}/s, socket errors: ${results[name].errors}`);
  }
  report(`GET ${path} of a ${images}-image store (wrk -t2 -c20 -d${duration}, HTTPS)`, [
    { name: 'req/s', wharf: results.wharf!.rps, reference: results.nginx!.rps, referenceName: 'nginx, same bytes', unit: 'req/s', target: '>= 0.5x', pass: (r) => r >= 0.5 },
  ]);
} finally {
  for (const stop of stops.reverse()) await stop();
  await removeDir(work);
}
