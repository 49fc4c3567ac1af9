/**
 * Benchmark 12: what counting downloads (usage statistics) costs a download. The same store is
 * served with `count_downloads` on and off by two servers at once, measured in 12 back-to-back
 * pairs of 3 s runs (which of the two goes first alternates; the servers are started twice, in
 * both orders), and wrk fetches the image's rootfs
 * over keep-alive plain HTTP (20 connections): a small file, so that per-download work, which is
 * where counting happens, weighs the most. This machine drifts by ±20% from one run to the next,
 * more than the effect measured: the figure is the median of the pairs' ratios (each pair shares
 * its drift), with the medians of the rates beside it. Target: on >= 0.97x off.
 * Afterwards `wharf stats` must show every download of the counted runs: counting was not skipped.
 * Context: nginx serving the same file (a hard link to the blob) the same way, in the same rounds.
 */
import { link, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { addImage, openBenchStore, tinySquashfs } from './store.ts';
import { blobFile, median, removeDir, report, requireCommands, runOk, startNginx, startWharf, tempDir, wharfBin, wrk } from './lib.ts';

const runs = 12;
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
  // drift falls on both alike. Two servers that differ in nothing still measure ~5% apart (with
  // both off, the pairs' median was 0.94): so the pair is started twice, in both orders, with
  // the same number of pairs each.
  const www = join(work, 'www');
  await mkdir(join(www, 'files'), { recursive: true });
  await link(blobFile(data, rootfs.sha256), join(www, path));
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  const on: number[] = [];
  const off: number[] = [];
  const byNginx: number[] = [];
  const rate = async (port: number) => (await wrk(`http://127.0.0.1:${port}/${path}`, `${seconds}s`)).rps;
  try {
    for (const countingFirst of [true, false]) {
      const start = (count: boolean) => startWharf(data, wharfBin, { env: { WHARF_COUNT_DOWNLOADS: String(count) } });
      const first = await start(countingFirst);
      const second = await start(!countingFirst);
      const [counting, silent] = countingFirst ? [first, second] : [second, first];
      try {
        // With wharf's certificate, made by its first start.
        if (!nginx) {
          nginx = await startNginx(join(work, 'nginx'), www, { cert: join(data, 'server.crt'), key: join(data, 'server.key') });
          await wrk(`http://127.0.0.1:${nginx.httpPort}/${path}`, '2s');
        }
        for (const wharf of [counting, silent]) await wrk(`http://127.0.0.1:${wharf.httpPort}/${path}`, '2s'); // warm-up
        for (let i = 0; i < runs / 2; i++) {
          // Which of the two goes first alternates too.
          if (i % 2 === 0) {
            on.push(await rate(counting.httpPort));
            off.push(await rate(silent.httpPort));
          } else {
            off.push(await rate(silent.httpPort));
            on.push(await rate(counting.httpPort));
          }
          byNginx.push(await rate(nginx.httpPort));
          const n = on.length - 1;
          console.log(`run ${n + 1}: counting on ${on[n]!.toFixed(0)} req/s, off ${off[n]!.toFixed(0)} req/s, nginx ${byNginx[n]!.toFixed(0)} req/s`);
        }
      } finally {
        await counting.stop();
        await silent.stop();
      }
    }
  } finally {
    await nginx?.stop();
  }
  const stats = JSON.parse((await runOk(wharfBin, ['--data-dir', data, 'stats', '--format', 'json'])).stdout) as { downloads: number }[];
  const counted = stats.reduce((n, s) => n + s.downloads, 0);
  // wrk's own count of the measured seconds; the warm-up adds more: at least that many were counted.
  const least = on.reduce((n, rps) => n + rps * seconds, 0) * 0.95;
  console.log(`downloads counted: ${counted} (the measured counted runs alone made ~${(least / 0.95).toFixed(0)})`);
  if (counted < least) throw new Error(`only ${counted} downloads were counted`);
  const pairRatio = median(on.map((rps, i) => rps / off[i]!));
  console.log(`ratio of each pair (on / off): ${on.map((rps, i) => (rps / off[i]!).toFixed(2)).join(' ')}; median ${pairRatio.toFixed(3)}`);
  report('12 download throughput, counting on vs off', [
    { name: 'small file, keep-alive HTTP, 20 connections: median of the pairs\' ratios', wharf: pairRatio, unit: 'x', target: '>= 0.97x', pass: (r) => r >= 0.97 },
    { name: 'the same, medians of the rates', wharf: median(on), reference: median(off), referenceName: 'counting off', unit: 'req/s', target: '', pass: () => true, context: true },
    { name: 'the same, counting on, vs nginx', wharf: median(on), reference: median(byNginx), referenceName: 'nginx', unit: 'req/s', target: '', pass: () => true, context: true },
  ]);
} finally {
  await removeDir(work);
}
