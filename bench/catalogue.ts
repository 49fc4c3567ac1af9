/**
 * Benchmark 11: the web catalogue on 1,000-image stores, in headless Chromium (Debian package
 * chromium, driven by playwright-core): 100 products of 10 versions (100 table rows), and 1,000
 * products of one version (1,000 rows).
 *  - First paint (first-contentful-paint) of `/`, a new browser context (new TLS connection,
 *    empty cache) per load, median of 9. Reference: the very same page bytes, script and
 *    stylesheet served by nginx with the same certificate, alternated with wharf.
 *    Target: < 300 ms, and (context) the ratio to nginx.
 *  - Search latency: from a keystroke in the search field to the next painted frame, median of
 *    20 queries. Target: < 100 ms.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium, type Browser } from 'playwright-core';
import { buildStore, tinySquashfs } from './store.ts';
import { httpsClient, median, removeDir, report, requireCommands, startNginx, startWharf, tempDir, type Row } from './lib.ts';

const images = 1000;
const loads = 9;
const chromiumPath = '/usr/bin/chromium';
requireCommands('nginx', 'mksquashfs');
if (!existsSync(chromiumPath)) throw new Error('bench/catalogue.ts needs Chromium (apt-get install chromium)');

async function firstPaint(browser: Browser, url: string): Promise<number> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  try {
    const page = await context.newPage();
    await page.goto(url, { waitUntil: 'load' });
    const fcp = await page.evaluate(`new Promise((resolve) => {
      const seen = performance.getEntriesByName('first-contentful-paint')[0];
      if (seen) return resolve(seen.startTime);
      new PerformanceObserver((list) => resolve(list.getEntriesByName('first-contentful-paint')[0].startTime)).observe({ type: 'paint', buffered: true });
    })`);
    return fcp as number;
  } finally {
    await context.close();
  }
}

const work = await tempDir('catalogue');
const stops: Array<() => Promise<void>> = [];
try {
  const squashfs = await tinySquashfs(work);
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  stops.push(() => browser.close());
  const rows: Row[] = [];
  for (const layout of ['versions', 'products'] as const) {
    const label = layout === 'versions' ? '100 products x 10 versions' : '1,000 products';
    const data = join(work, `data-${layout}`);
    const store = await buildStore(data, images, squashfs, layout);
    await store.meta.close();
    const wharf = await startWharf(data);
    stops.push(wharf.stop);

    // nginx serves a copy of exactly what wharf serves: the page, its script and its stylesheet.
    const client = httpsClient(wharf.ca);
    const page = await client.get(`${wharf.base}/`, { accept: 'text/html' });
    const html = page.body.toString();
    const root = join(work, `www-${layout}`);
    await mkdir(join(root, 'catalogue', 'assets'), { recursive: true });
    await mkdir(join(root, 'catalogue', 'v1'), { recursive: true });
    // Each with its gzip form beside it (gzip_static), as wharf keeps one: the same bytes on the wire.
    const copy = async (path: string, body: Buffer) => {
      await writeFile(join(root, path), body);
      await writeFile(join(root, `${path}.gz`), gzipSync(body));
    };
    await copy('index.html', page.body);
    // The floor of this browser on this machine: a page with one line of text, from nginx.
    await copy('empty.html', Buffer.from('<!doctype html><html lang="en"><title>x</title><p>x</p></html>'));
    for (const asset of html.match(/\/catalogue\/assets\/[^"]+/g) ?? []) await copy(asset, (await client.get(wharf.base + asset)).body);
    for (const json of ['/catalogue/v1/products.json', '/catalogue/v1/downloads.json']) await copy(json, (await client.get(wharf.base + json)).body);
    client.close();
    console.log(`${label}: ${(html.length / 1024).toFixed(0)} KiB of HTML, ${(html.match(/<div role="row" data-key/g) ?? []).length} product rows`);
    const nginx = await startNginx(join(work, `nginx-${layout}`), root, { cert: join(data, 'server.crt'), key: join(data, 'server.key') });
    stops.push(nginx.stop);

    const wharfPaints: number[] = [];
    const nginxPaints: number[] = [];
    const emptyPaints: number[] = [];
    await firstPaint(browser, `${wharf.base}/`);
    await firstPaint(browser, `https://127.0.0.1:${nginx.httpsPort}/`);
    for (let i = 0; i < loads; i++) {
      wharfPaints.push(await firstPaint(browser, `${wharf.base}/`));
      nginxPaints.push(await firstPaint(browser, `https://127.0.0.1:${nginx.httpsPort}/`));
      emptyPaints.push(await firstPaint(browser, `https://127.0.0.1:${nginx.httpsPort}/empty.html`));
    }
    console.log(`first paint, wharf (ms): ${wharfPaints.map((v) => v.toFixed(0)).join(' ')}`);
    console.log(`first paint, nginx (ms): ${nginxPaints.map((v) => v.toFixed(0)).join(' ')}`);
    console.log(`first paint, one-line page (ms): ${emptyPaints.map((v) => v.toFixed(0)).join(' ')}`);

    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const tab = await context.newPage();
    await tab.goto(`${wharf.base}/`, { waitUntil: 'load' });
    const queries = ['b', 'be', 'benchos3', 'benchos3 5', 'x', '', 'benchos', 'benchos9 1', 'amd64', '7'];
    const searches: number[] = [];
    for (let round = 0; round < 2; round++) {
      for (const query of queries) {
        const ms = await tab.evaluate(`new Promise((resolve) => {
          const input = document.getElementById('search');
          const started = performance.now();
          input.value = ${JSON.stringify(query)};
          input.dispatchEvent(new Event('input'));
          requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - started)));
        })`);
        searches.push(ms as number);
      }
    }
    console.log(`search (ms): ${searches.map((v) => v.toFixed(1)).join(' ')}`);
    await context.close();
    await nginx.stop();
    await wharf.stop();

    rows.push(
      { name: `first paint of /, ${label}`, wharf: median(wharfPaints), unit: 'ms', target: '< 300 ms', pass: (v) => v < 300 },
      { name: `first paint vs nginx, same bytes, ${label}`, wharf: median(wharfPaints), reference: median(nginxPaints), referenceName: 'nginx', unit: 'ms', target: '', pass: () => true, context: true },
      { name: `first paint of a one-line page from nginx (this browser's floor), ${label} run`, wharf: median(emptyPaints), unit: 'ms', target: '', pass: () => true, context: true },
      { name: `search, keystroke to next frame, ${label}`, wharf: median(searches), unit: 'ms', target: '< 100 ms', pass: (v) => v < 100 },
    );
  }
  report('11 web catalogue, 1,000 images (Chromium)', rows);
} finally {
  for (const stop of stops.reverse()) await stop();
  await removeDir(work);
}
