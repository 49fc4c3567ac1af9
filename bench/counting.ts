/**
 * Benchmark 12: what counting downloads (usage statistics) costs a download. The same store is
 * served with `count_downloads` on and off by two servers at once, measured alternately, 7 runs of 3 s each, and wrk fetches the
 * image's rootfs over keep-alive plain HTTP (20 connections): a small file, so that per-download
 * work, which is where counting happens, weighs the most. Target: on >= 0.97x off (medians).
 * Afterwards `wharf stats` must show every download of the counted runs: counting was not skipped.
 * Context: nginx serving the same file (a hard link to the blob) the same way, in the same rounds.
 */
import { link, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { addImage, openBenchStore, tinySquashfs } from './store.ts';
import { blobFile, median, removeDir, report, requireCommands, runOk, startNginx, startWharf, tempDir, wharfBin, wrk } from './lib.ts';

const runs = 7;
const seconds = 3;
requireCommands('wrk', 'mksquashfs', 'nginx');
const work = await tempDir('counting');
try {
  const data = join(work, 'data');
  const squashfs = await tinySquashfs(work);
  const store = await openBenchStore(data);
  await addImage(store, 0, squashfs);
  const rootfs = (await store.meta.listImages())[0]!.rootfs!;
  await store.meta.close();
  const path = `files/${rootfs.sha256}.squashfs`;
  console.log(`file: ${rootfs.size} bytes`);

  // Both served at once (each idle while the other is measured), alternated: the machine's
  // drift falls on both alike.
  const counting = await startWharf(data, wharfBin, { env: { WHARF_COUNT_DOWNLOADS: 'true' } });
  const silent = await startWharf(data, wharfBin, { env: { WHARF_COUNT_DOWNLOADS: 'false' } });
  const www = join(work, 'www');
  await mkdir(join(www, 'files'), { recursive: true });
  await link(blobFile(data, rootfs.sha256), join(www, path));
  const nginx = await startNginx(join(work, 'nginx'), www, { cert: join(data, 'server.crt'), key: join(data, 'server.key') });
  const on: number[] = [];
  const off: number[] = [];
  const byNginx: number[] = [];
  try {
    await wrk(`http://127.0.0.1:${nginx.httpPort}/${path}`, '2s');
    for (const wharf of [counting, silent]) await wrk(`http://127.0.0.1:${wharf.httpPort}/${path}`, '2s'); // warm-up
    for (let i = 0; i < runs; i++) {
      on.push((await wrk(`http://127.0.0.1:${counting.httpPort}/${path}`, `${seconds}s`)).rps);
      off.push((await wrk(`http://127.0.0.1:${silent.httpPort}/${path}`, `${seconds}s`)).rps);
      byNginx.push((await wrk(`http://127.0.0.1:${nginx.httpPort}/${path}`, `${seconds}s`)).rps);
      console.log(`run ${i + 1}: counting on ${on[i]!.toFixed(0)} req/s, off ${off[i]!.toFixed(0)} req/s, nginx ${byNginx[i]!.toFixed(0)} req/s`);
    }
  } finally {
    await nginx.stop();
    await counting.stop();
    await silent.stop();
  }
  const stats = JSON.parse((await runOk(wharfBin, ['--data-dir', data, 'stats', '--format', 'json'])).stdout) as { downloads: number }[];
  const counted = stats.reduce((n, s) => n + s.downloads, 0);
  // wrk's own count of the measured seconds; the warm-up adds more: at least that many were counted.
  const least = on.reduce((n, rps) => n + rps * seconds, 0) * 0.95;
  console.log(`downloads counted: ${counted} (the measured counted runs alone made ~${(least / 0.95).toFixed(0)})`);
  if (counted < least) throw new Error(`only ${counted} downloads were counted`);
  report('12 download throughput, counting on vs off', [
    { name: 'small file, keep-alive HTTP, 20 connections', wharf: median(on), reference: median(off), referenceName: 'counting off', unit: 'req/s', target: '>= 0.97x', pass: (r) => r >= 0.97 },
    { name: 'the same, counting on, vs nginx', wharf: median(on), reference: median(byNginx), referenceName: 'nginx', unit: 'req/s', target: '', pass: () => true, context: true },
  ]);
} finally {
  await removeDir(work);
}
