/**
 * Benchmark 14: replicas add capacity with no shared bottleneck. images.json of a 30-image store
 * through HAProxy (TCP mode) with a new TLS connection per request, as LXD and Incus make them
 * (`wrk -H 'Connection: close'`), from one replica and from two, every replica a single serving
 * process pinned to core 0, HAProxy and wrk on core 1: on 2 cores, pinning is the honest way to
 * show that capacity grows with processes and hosts (two replicas sharing one core must serve at
 * least what one does, so nothing they share, the database above all, is in a request's way).
 * Target (issue 24): 2 replicas >= 0.95x one. 5 alternating rounds of 12 s; medians.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { loadConfig } from '../src/config.ts';
import { openStore } from '../src/factory.ts';
import { silentLogger } from '../src/log.ts';
import { ownCluster } from '../test/helpers/postgres.ts';
import { addImage, tinySquashfs } from './store.ts';
import { freePort, median, removeDir, report, requireCommands, sleep, startWharf, tempDir, wrk, type WharfServer } from './lib.ts';

const images = 30;
const rounds = 5;
requireCommands('wrk', 'haproxy', 'taskset', 'mksquashfs');

const work = await tempDir('replicas-capacity');
const stops: Array<() => Promise<void>> = [];

async function balancer(ports: number[]): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const config = join(work, `haproxy-${ports.length}.cfg`);
  await writeFile(
    config,
    `global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n` +
      `frontend f\n  bind 127.0.0.1:${port}\n  default_backend b\nbackend b\n  balance roundrobin\n${ports.map((p, i) => `  server r${i} 127.0.0.1:${p}\n`).join('')}`,
  );
  const child: ChildProcess = spawn('taskset', ['-c', '1', 'haproxy', '-db', '-f', config], { stdio: 'ignore' });
  await sleep(500);
  return { url: `https://127.0.0.1:${port}/streams/v1/images.json`, stop: async () => void child.kill('SIGKILL') };
}

try {
  const cluster = await ownCluster();
  const blobStore = join(work, 'blobs');
  const store = await openStore(await loadConfig(join(work, 'cli'), { database: cluster.url, blobStore }, {}), silentLogger);
  stops.push(() => store.meta.close());
  const squashfs = await tinySquashfs(work);
  for (let i = 0; i < images; i++) await addImage(store, i, squashfs);
  const identity = await selfsigned.generate([{ name: 'commonName', value: 'wharf' }], { keyType: 'ec', extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }] });
  const tls = { cert: join(work, 'server.crt'), key: join(work, 'server.key') };
  await writeFile(tls.cert, identity.cert);
  await writeFile(tls.key, identity.private);
  const env = { WHARF_DATABASE: cluster.url, WHARF_BLOB_STORE: blobStore, WHARF_SERVE_PROCESSES: '1' };
  // Every replica on core 0, wrk (and HAProxy) on core 1: taskset, through wrappers.
  await writeFile(join(work, 'pinned-wharf'), `#!/bin/sh\nexec taskset -c 0 ${join(import.meta.dirname, '..', 'bin', 'wharf')} "$@"\n`, { mode: 0o755 });
  await mkdir(join(work, 'bin'));
  await writeFile(join(work, 'bin', 'wrk'), `#!/bin/sh\nexec taskset -c 1 ${execFileSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' }).trim()} "$@"\n`, { mode: 0o755 });
  process.env.PATH = `${join(work, 'bin')}:${process.env.PATH}`;
  const pinned = (name: string): Promise<WharfServer> => startWharf(join(work, name), join(work, 'pinned-wharf'), { env, tls });
  const one = [await pinned('replica-a')];
  const two = [...one, await pinned('replica-b')];
  for (const r of two) stops.push(r.stop);
  const single = await balancer(one.map((r) => r.httpsPort));
  const pair = await balancer(two.map((r) => r.httpsPort));
  stops.push(single.stop, pair.stop);

  const wrkPinned = (url: string) => wrk(url, '12s', ['Connection: close']);
  await wrkPinned(single.url); // warm-up
  await wrkPinned(pair.url);
  const onOne: number[] = [];
  const onTwo: number[] = [];
  for (let i = 0; i < rounds; i++) {
    onOne.push((await wrkPinned(single.url)).rps);
    onTwo.push((await wrkPinned(pair.url)).rps);
    console.log(`round ${i + 1}: one replica ${onOne[i]!.toFixed(0)} req/s, two replicas ${onTwo[i]!.toFixed(0)} req/s`);
  }
  // Context: the same with two servers that share nothing (embedded stores of their own): what
  // two processes on one core cost by themselves, whatever a shared store adds.
  const alone = [];
  for (const name of ['alone-a', 'alone-b']) {
    const own = await openStore(await loadConfig(join(work, name), {}, {}), silentLogger);
    for (let i = 0; i < images; i++) await addImage(own, i, squashfs);
    await own.meta.close();
    alone.push(await startWharf(join(work, name), join(work, 'pinned-wharf'), { env: { WHARF_SERVE_PROCESSES: '1' }, tls }));
  }
  for (const r of alone) stops.push(r.stop);
  const aloneOne = await balancer([alone[0]!.httpsPort]);
  const alonePair = await balancer(alone.map((r) => r.httpsPort));
  stops.push(aloneOne.stop, alonePair.stop);
  await wrkPinned(aloneOne.url);
  const sharingNothing: number[] = [];
  const sharingNothingOne: number[] = [];
  for (let i = 0; i < rounds; i++) {
    sharingNothingOne.push((await wrkPinned(aloneOne.url)).rps);
    sharingNothing.push((await wrkPinned(alonePair.url)).rps);
    console.log(`round ${i + 1}, sharing nothing: one server ${sharingNothingOne[i]!.toFixed(0)} req/s, two ${sharingNothing[i]!.toFixed(0)} req/s`);
  }
  report(`14 images.json through HAProxy, a new TLS connection per request, replicas pinned to one core (${images} images)`, [
    { name: `two replicas, median of ${rounds}`, wharf: median(onTwo), reference: median(onOne), referenceName: 'one replica', unit: 'req/s', target: '>= 0.95x', pass: (r) => r >= 0.95 },
    { name: `two servers sharing nothing, median of ${rounds}`, wharf: median(sharingNothing), reference: median(sharingNothingOne), referenceName: 'one of them', unit: 'req/s', target: '-', pass: () => true, context: true },
  ]);
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await removeDir(work);
}
