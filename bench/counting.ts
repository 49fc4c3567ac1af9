/**
 * Benchmark 12: what counting downloads (usage statistics) costs a download. The same store is
 * served with `count_downloads` on and off by two servers at once, measured in 12 back-to-back
 * pairs of 3 s runs (which of the two goes first alternates; the servers are started twice, in
 * both orders), and wrk fetches the image's rootfs
 * over keep-alive plain HTTP (20 connections): a small file, so that per-download work, which is
 * where counting happens, weighs the most. The figure is the median of the pairs' rate ratios
 * (each pair shares the machine's drift). Rates drift by ±20% from one run to the next here, more
 * than the effect measured, and so does the CPU time a download costs (/proc, user + system), so
 * the run also times `DownloadCounter.count` alone, in this process, and reports it as a share
 * of that CPU time: the cost counting adds, below what the rates can resolve. Target: on >= 0.97x off.
 * Afterwards `wharf stats` must show every download of the counted runs: counting was not skipped.
 * Context: nginx serving the same file (a hard link to the blob) the same way, in the same rounds.
 */
import { link, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { addImage, openBenchStore, tinySquashfs } from './store.ts';
import { DownloadCounter } from '../src/core/usage.ts';
import type { UsageStore } from '../src/meta/usage.ts';
import { silentLogger } from '../src/log.ts';
import { blobFile, cpuSeconds, median, removeDir, report, requireCommands, runOk, startNginx, startWharf, tempDir, wharfBin, wrk, type WharfServer } from './lib.ts';

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
  // CPU seconds per download of each run.
  const cpuOn: number[] = [];
  const cpuOff: number[] = [];
  const measure = async (wharf: WharfServer, rates: number[], cpu: number[]) => {
    const before = cpuSeconds(wharf.pid);
    const run = await wrk(`http://127.0.0.1:${wharf.httpPort}/${path}`, `${seconds}s`);
    cpu.push((cpuSeconds(wharf.pid) - before) / run.requests);
    rates.push(run.rps);
  };
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
            await measure(counting, on, cpuOn);
            await measure(silent, off, cpuOff);
          } else {
            await measure(silent, off, cpuOff);
            await measure(counting, on, cpuOn);
          }
          byNginx.push(await rate(nginx.httpPort));
          const n = on.length - 1;
          const us = (seconds: number) => (seconds * 1e6).toFixed(1);
          console.log(`run ${n + 1}: counting on ${on[n]!.toFixed(0)} req/s (${us(cpuOn[n]!)} µs CPU a download), off ${off[n]!.toFixed(0)} req/s (${us(cpuOff[n]!)} µs), nginx ${byNginx[n]!.toFixed(0)} req/s`);
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
  const cpuRatios = cpuOn.map((c, i) => cpuOff[i]! / c);
  const rateRatios = on.map((rps, i) => rps / off[i]!);
  console.log(`CPU a download, off / on, each pair: ${cpuRatios.map((r) => r.toFixed(3)).join(' ')}; median ${median(cpuRatios).toFixed(3)}`);
  console.log(`rate, on / off, each pair: ${rateRatios.map((r) => r.toFixed(2)).join(' ')}; median ${median(rateRatios).toFixed(3)}`);
  const countNs = timeCount();
  report('12 download throughput, counting on vs off', [
    { name: 'small file, keep-alive HTTP, 20 connections: rate on / off, median of the pairs', wharf: median(rateRatios), unit: 'x', target: '>= 0.97x', pass: (r) => r >= 0.97 },
    { name: 'the same, CPU a download, off / on, median of the pairs', wharf: median(cpuRatios), unit: 'x', target: '', pass: () => true, context: true },
    { name: 'the same, CPU a download (medians)', wharf: median(cpuOn) * 1e6, reference: median(cpuOff) * 1e6, referenceName: 'counting off', unit: 'µs', target: '', pass: () => true, context: true },
    { name: 'one DownloadCounter.count, timed alone, vs the CPU of a download (off)', wharf: countNs / 1000, reference: median(cpuOff) * 1e6, referenceName: 'a download', unit: 'µs', target: '', pass: () => true, context: true },
    { name: 'the same, medians of the rates', wharf: median(on), reference: median(off), referenceName: 'counting off', unit: 'req/s', target: '', pass: () => true, context: true },
    { name: 'the same, counting on, vs nginx', wharf: median(on), reference: median(byNginx), referenceName: 'nginx', unit: 'req/s', target: '', pass: () => true, context: true },
  ]);
} finally {
  await removeDir(work);
}

/** Nanoseconds one count takes (median of 5 rounds of a million), with a store that is never written. */
function timeCount(): number {
  const counter = new DownloadCounter({} as UsageStore, silentLogger);
  const image = { fingerprint: 'f'.repeat(64), product: 'debian:12:amd64:default' };
  const rounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < 1e6; i++) counter.count(image, 'file');
    rounds.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return median(rounds);
}
