/**
 * Benchmark 17: channels and private views on a 1,000-image store, `wharf serve` as its own process.
 *  - Promotion: how long after `moveToChannel` (src/core/images.ts, what `wharf image promote`
 *    runs) returns the channel's images.json (/stable/streams/v1/) lists the image, polled over one
 *    keep-alive HTTPS connection with If-None-Match every 2 ms. Promotions start at random
 *    moments (50-300 ms apart), so they fall at every phase of the server's change polling; 15 of
 *    them. Target: <= 100 ms (median).
 *  - Index through a private view: requests per second for images.json at a view's URL (a
 *    token, a view selecting the same 1,000 images) against the root's images.json, the same
 *    server, the same run, `wrk -t2 -c20 -d10s` over HTTPS after a 2 s warm-up of each.
 *    Target: >= 0.9x.
 */
import { join } from 'node:path';
import { moveToChannel } from '../src/core/images.ts';
import { addView, addViewToken } from '../src/core/views.ts';
import { buildStore, tinySquashfs } from './store.ts';
import { httpsClient, median, removeDir, report, requireCommands, sleep, startWharf, tempDir, wrk } from './lib.ts';

const images = 1000;
const promotions = 15;
const pollMs = 2;
const deadlineMs = 10_000;
const duration = '10s';
requireCommands('wrk', 'mksquashfs');

const work = await tempDir('channels');
const stops: Array<() => Promise<void>> = [];
try {
  const data = join(work, 'data');
  const store = await buildStore(data, images, await tinySquashfs(work));
  stops.push(() => store.meta.close());
  // The view selects what the root lists: the same documents, but each file a path of the view.
  await addView(store, { name: 'acme', channel: 'default', filters: [] });
  const { token } = await addViewToken(store, 'acme');
  const wharf = await startWharf(data);
  stops.push(wharf.stop);
  const client = httpsClient(wharf.ca);
  stops.push(async () => client.close());

  const channelUrl = `${wharf.base}/stable/streams/v1/images.json`;
  let etag = '';
  const waitFor = async (fp: string, since: number): Promise<number> => {
    for (;;) {
      const res = await client.get(channelUrl, etag ? { 'if-none-match': etag } : {});
      if (res.status === 200) {
        etag = String(res.headers.etag);
        if (res.body.includes(fp)) return performance.now() - since;
      } else if (res.status !== 304 && res.status !== 404) throw new Error(`stable images.json: HTTP ${res.status}`);
      if (performance.now() - since > deadlineMs) throw new Error(`${fp} not in stable after ${deadlineMs} ms`);
      await sleep(pollMs);
    }
  };
  const fingerprints = (await store.meta.listImages()).map((i) => i.fingerprint);
  const promoted: number[] = [];
  for (let k = 0; k < promotions; k++) {
    await sleep(50 + Math.random() * 250);
    const fp = fingerprints[k * 37]!;
    await moveToChannel(store, fp, 'stable', 'promote', 'bench');
    promoted.push(await waitFor(fp, performance.now()));
  }
  console.log(`promotions (ms): ${promoted.map((ms) => ms.toFixed(0)).join(' ')}`);

  const rootUrl = `${wharf.base}/streams/v1/images.json`;
  const viewUrl = `${wharf.base}/views/acme/${token}/streams/v1/images.json`;
  const [root, view] = [await client.get(rootUrl), await client.get(viewUrl)];
  if (root.status !== 200 || view.status !== 200) throw new Error(`images.json: root ${root.status}, view ${view.status}`);
  const versions = (body: Buffer) => Object.values((JSON.parse(body.toString()) as { products: Record<string, { versions: object }> }).products).reduce((n, p) => n + Object.keys(p.versions).length, 0);
  if (versions(view.body) !== versions(root.body)) throw new Error(`the view lists ${versions(view.body)} versions, the root ${versions(root.body)}`);
  console.log(`images.json: root ${root.body.length} bytes, view ${view.body.length} bytes, ${versions(root.body)} versions each`);
  const rps: Record<string, number> = {};
  for (const [name, url] of [
    ['root', rootUrl],
    ['view', viewUrl],
  ] as const) {
    await wrk(url, '2s');
    const result = await wrk(url, duration);
    rps[name] = result.rps;
    // The token is printed nowhere: the URL as the log would show it.
    console.log(`${name}: ${result.rps.toFixed(0)} req/s, ${result.transfer}/s, socket errors: ${result.errors}`);
  }

  report(`17 channels and private views on a ${images}-image store`, [
    { name: `promotion until the channel's images.json lists it, median of ${promotions}`, wharf: median(promoted), unit: 'ms', target: '<= 100 ms', pass: (v) => v <= 100 },
    { name: `promotion, max of ${promotions}`, wharf: Math.max(...promoted), unit: 'ms', target: '-', pass: () => true, context: true },
    { name: 'images.json through a private view (token)', wharf: rps.view!, reference: rps.root!, referenceName: 'the root images.json', unit: 'req/s', target: '>= 0.9x', pass: (r) => r >= 0.9 },
  ]);
} finally {
  for (const stop of stops.reverse()) await stop();
  await removeDir(work);
}
