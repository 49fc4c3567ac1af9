/**
 * Benchmark 3: requests per second for streams/v1/images.json of a 1,000-image store, wharf
 * against nginx serving the very same bytes from a file (saved from wharf's response), both over
 * HTTPS, driven by `wrk -t2 -c20 -d10s` (after a 2 s warm-up of each). Target: wharf >= 0.5x.
 * As context, the same with Accept-Encoding: gzip (nginx serves wharf's gzip bytes via gzip_static).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildStore, tinySquashfs } from './store.ts';
import { httpsClient, removeDir, report, requireCommands, startNginx, startWharf, tempDir, wrk, type WrkResult } from './lib.ts';

const images = 1000;
const duration = '10s';
requireCommands('wrk', 'nginx', 'mksquashfs');

const work = await tempDir('images-json');
const stops: Array<() => Promise<void>> = [];
try {
  const data = join(work, 'data');
  const store = await buildStore(data, images, await tinySquashfs(work));
  await store.meta.close();

  const wharf = await startWharf(data);
  stops.push(wharf.stop);
  const client = httpsClient(wharf.ca);
  const url = `${wharf.base}/streams/v1/images.json`;
  const plain = await client.get(url);
  const gzip = await client.get(url, { 'accept-encoding': 'gzip' });
  client.close();
  const doc = JSON.parse(plain.body.toString()) as { products: Record<string, { versions: Record<string, unknown> }> };
  const versions = Object.values(doc.products).reduce((n, p) => n + Object.keys(p.versions).length, 0);
  if (versions !== images) throw new Error(`images.json lists ${versions} versions, expected ${images}`);
  console.log(`images.json: ${plain.body.length} bytes (${gzip.body.length} gzipped), ${Object.keys(doc.products).length} products, ${versions} versions`);

  const root = join(work, 'www');
  await mkdir(join(root, 'streams', 'v1'), { recursive: true });
  await writeFile(join(root, 'streams', 'v1', 'images.json'), plain.body);
  await writeFile(join(root, 'streams', 'v1', 'images.json.gz'), gzip.body);
  const nginx = await startNginx(join(work, 'nginx'), root, { cert: join(data, 'server.crt'), key: join(data, 'server.key') });
  stops.push(nginx.stop);
  const nginxUrl = `https://127.0.0.1:${nginx.httpsPort}/streams/v1/images.json`;
  const check = httpsClient(wharf.ca);
  const same = await check.get(nginxUrl);
  check.close();
  if (!same.body.equals(plain.body)) throw new Error('nginx does not serve the same bytes');

  const results: Record<string, WrkResult> = {};
  for (const [name, target, headers] of [
    ['wharf', url, []],
    ['nginx', nginxUrl, []],
    ['wharf gzip', url, ['Accept-Encoding: gzip']],
    ['nginx gzip', nginxUrl, ['Accept-Encoding: gzip']],
  ] as const) {
    await wrk(target, '2s', [...headers]);
    results[name] = await wrk(target, duration, [...headers]);
    console.log(`${name}: ${results[name].rps.toFixed(0)} req/s, ${results[name].transfer}/s, socket errors: ${results[name].errors}`);
  }
  report(`3 images.json of a ${images}-image store (wrk -t2 -c20 -d${duration}, HTTPS)`, [
    { name: 'req/s, identity', wharf: results.wharf!.rps, reference: results.nginx!.rps, referenceName: 'nginx', unit: 'req/s', target: '>= 0.5x', pass: (r) => r >= 0.5 },
    { name: 'req/s, gzip', wharf: results['wharf gzip']!.rps, reference: results['nginx gzip']!.rps, referenceName: 'nginx gzip_static', unit: 'req/s', target: '-', pass: () => true, context: true },
  ]);
} finally {
  for (const stop of stops.reverse()) await stop();
  await removeDir(work);
}
