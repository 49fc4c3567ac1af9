/**
 * Benchmark 12: how long after a change committed on the shared PostgreSQL catalogue *every*
 * replica serves it. Two `wharf serve` replicas (processes of their own, one serving process each)
 * on one PostgreSQL (a cluster of Debian's, started here) and one blob directory; 100 images. An
 * image is added through src/core/import.ts at random moments (50-300 ms apart); the clock starts
 * when importImage() returns (committed) and stops when both replicas' images.json list it (each
 * polled over a keep-alive connection with If-None-Match every 2 ms). 20 adds.
 * Targets (issue 24): median < 200 ms, worst < 1 s.
 * Reference, same run: one embedded server (SQLite, its 50 ms poll) measured the same way.
 */
import { join } from 'node:path';
import { loadConfig } from '../src/config.ts';
import { openStore } from '../src/factory.ts';
import { silentLogger } from '../src/log.ts';
import type { Store } from '../src/core/context.ts';
import { ownCluster } from '../test/helpers/postgres.ts';
import { addImage, tinySquashfs } from './store.ts';
import { httpsClient, median, removeDir, report, requireCommands, sleep, startWharf, tempDir, type WharfServer } from './lib.ts';

const images = 100;
const adds = 20;
const pollMs = 2;
const deadlineMs = 10_000;
requireCommands('mksquashfs');

const work = await tempDir('replicas-change');
const stops: Array<() => Promise<void>> = [];

/** Adds `adds` images to `store`, each timed until every server lists it. */
async function visibility(store: Store, servers: WharfServer[], first: number): Promise<number[]> {
  const squashfs = await tinySquashfs(work);
  const watched = servers.map((server) => {
    const client = httpsClient(server.ca);
    stops.push(async () => client.close());
    return { client, url: `${server.base}/streams/v1/images.json`, etag: '' };
  });
  const lists = async (w: (typeof watched)[number], fp: string) => {
    const res = await w.client.get(w.url, w.etag ? { 'if-none-match': w.etag } : {});
    if (res.status === 200) {
      w.etag = String(res.headers.etag);
      return res.body.includes(fp);
    }
    if (res.status !== 304) throw new Error(`images.json: HTTP ${res.status}`);
    return false;
  };
  const times: number[] = [];
  for (let k = 0; k < adds; k++) {
    await sleep(50 + Math.random() * 250);
    const fp = await addImage(store, first + k, squashfs);
    const committed = performance.now();
    const seen = new Set<number>();
    while (seen.size < watched.length) {
      for (const [i, w] of watched.entries()) if (!seen.has(i) && (await lists(w, fp))) seen.add(i);
      if (performance.now() - committed > deadlineMs) throw new Error(`${fp} not on every server after ${deadlineMs} ms`);
      if (seen.size < watched.length) await sleep(pollMs);
    }
    times.push(performance.now() - committed);
  }
  return times;
}

try {
  const squashfs = await tinySquashfs(work);
  // The replicas: PostgreSQL and a shared blob directory.
  const cluster = await ownCluster();
  const shared = { database: cluster.url, blobStore: join(work, 'blobs') };
  const store = await openStore(await loadConfig(join(work, 'cli'), shared, {}), silentLogger);
  stops.push(() => store.meta.close());
  for (let i = 0; i < images; i++) await addImage(store, i, squashfs);
  const env = { WHARF_DATABASE: cluster.url, WHARF_BLOB_STORE: shared.blobStore, WHARF_SERVE_PROCESSES: '1' };
  const replicas = [await startWharf(join(work, 'replica-a'), undefined, { env }), await startWharf(join(work, 'replica-b'), undefined, { env })];
  for (const r of replicas) stops.push(r.stop);
  const onReplicas = await visibility(store, replicas, images);
  console.log(`every replica (ms): ${onReplicas.map((ms) => ms.toFixed(0)).join(' ')}`);

  // The reference: one embedded server on SQLite.
  const embeddedData = join(work, 'embedded');
  const embedded = await openStore(await loadConfig(embeddedData, {}, {}), silentLogger);
  stops.push(() => embedded.meta.close());
  for (let i = 0; i < images; i++) await addImage(embedded, i, squashfs);
  const single = await startWharf(embeddedData, undefined, { env: { WHARF_SERVE_PROCESSES: '1' } });
  stops.push(single.stop);
  const onEmbedded = await visibility(embedded, [single], images);
  console.log(`embedded server (ms): ${onEmbedded.map((ms) => ms.toFixed(0)).join(' ')}`);

  report(`12 a change on the shared catalogue until every replica serves it (${images} images, 2 replicas)`, [
    { name: `median of ${adds}`, wharf: median(onReplicas), reference: median(onEmbedded), referenceName: 'embedded SQLite server', unit: 'ms', target: '< 200 ms', pass: () => median(onReplicas) < 200 },
    { name: `worst of ${adds}`, wharf: Math.max(...onReplicas), reference: Math.max(...onEmbedded), referenceName: 'embedded SQLite server', unit: 'ms', target: '< 1000 ms', pass: () => Math.max(...onReplicas) < 1000 },
  ]);
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await removeDir(work);
}
