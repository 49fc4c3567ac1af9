/**
 * Benchmark 16: one replica against the runtime's own ceiling. images.json of a 30-image store on
 * PostgreSQL, served by `wharf serve` (a replica: one serving process per core), against a bare
 * `node:https` server answering the very same bytes and headers with the same certificate, one
 * process per core (node:cluster), the least a Node server can do for this answer. `wrk -t2 -c20`
 * with keep-alive and with a new TLS connection per request (`Connection: close`, as LXD and Incus
 * make them); 2 s warm-up each, then 3 alternating rounds of 6 s per server and mode; medians.
 * Targets (issue 24): >= 0.8x with keep-alive, >= 0.9x with a new connection per request.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { loadConfig } from '../src/config.ts';
import { openStore } from '../src/factory.ts';
import { silentLogger } from '../src/log.ts';
import { ownCluster } from '../test/helpers/postgres.ts';
import { addImage, tinySquashfs } from './store.ts';
import { httpsClient, median, removeDir, report, requireCommands, startBareHttps, startWharf, tempDir, wrk, type Row } from './lib.ts';

const images = 30;
const rounds = 3;
const seconds = '6s';
requireCommands('wrk', 'mksquashfs');


const work = await tempDir('images-json-floor');
const stops: Array<() => Promise<void>> = [];
try {
  const cluster = await ownCluster();
  const blobStore = join(work, 'blobs');
  const store = await openStore(await loadConfig(join(work, 'cli'), { database: cluster.url, blobStore }, {}), silentLogger);
  const squashfs = await tinySquashfs(work);
  for (let i = 0; i < images; i++) await addImage(store, i, squashfs);
  await store.meta.close();
  const identity = await selfsigned.generate([{ name: 'commonName', value: 'wharf' }], { keyType: 'ec', extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }] });
  const tls = { cert: join(work, 'server.crt'), key: join(work, 'server.key') };
  await writeFile(tls.cert, identity.cert);
  await writeFile(tls.key, identity.private);

  const replica = await startWharf(join(work, 'replica'), undefined, { env: { WHARF_DATABASE: cluster.url, WHARF_BLOB_STORE: blobStore }, tls });
  stops.push(replica.stop);
  const url = `${replica.base}/streams/v1/images.json`;
  const client = httpsClient(replica.ca);
  const answer = await client.get(url);
  client.close();
  if (answer.status !== 200 || !answer.body.toString().includes('"products"')) throw new Error(`images.json: ${answer.status}`);
  // The same answer, byte for byte and header for header (but those that name a moment or a request).
  const headers = Object.fromEntries(Object.entries(answer.headers).filter(([name]) => !['date', 'connection', 'keep-alive', 'content-length', 'x-request-id'].includes(name)));
  await writeFile(join(work, 'images.json'), answer.body);
  const bare = await startBareHttps(work, tls, join(work, 'images.json'), headers);
  stops.push(bare.stop);
  const bareUrl = `https://127.0.0.1:${bare.port}/streams/v1/images.json`;
  console.log(`images.json: ${answer.body.length} bytes, ${Object.keys(headers).length} headers besides the length`);

  const rows: Row[] = [];
  for (const [mode, extra, target] of [
    ['keep-alive', [], 0.8],
    ['new TLS connection per request', ['Connection: close'], 0.9],
  ] as const) {
    await wrk(url, '2s', [...extra]);
    await wrk(bareUrl, '2s', [...extra]);
    const wharfRps: number[] = [];
    const bareRps: number[] = [];
    for (let i = 0; i < rounds; i++) {
      wharfRps.push((await wrk(url, seconds, [...extra])).rps);
      bareRps.push((await wrk(bareUrl, seconds, [...extra])).rps);
      console.log(`${mode}, round ${i + 1}: wharf ${wharfRps[i]!.toFixed(0)} req/s, bare node:https ${bareRps[i]!.toFixed(0)} req/s`);
    }
    rows.push({ name: `${mode}, median of ${rounds}`, wharf: median(wharfRps), reference: median(bareRps), referenceName: 'bare node:https', unit: 'req/s', target: `>= ${target}x`, pass: (r) => r >= target });
  }
  report(`16 images.json of a ${images}-image store on PostgreSQL, one replica against a bare node:https server (wrk -t2 -c20, HTTPS)`, rows);
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await removeDir(work);
}
