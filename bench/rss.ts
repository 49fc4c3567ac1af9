/**
 * Benchmark 5: memory of the `wharf serve` processes (node; bin/wharf execs it, so the pid we
 * start is node's, and the serving processes it forks, one per core, are its children) while 20 clients download the 1 GiB squashfs at once over HTTPS
 * (20 parallel `curl --cacert ... -o /dev/null`). VmRSS is sampled from /proc/PID/status every
 * 100 ms for each process; the peak of the largest process is the figure (the sum is context). VmHWM (the kernel's own high-water mark, which also
 * catches peaks between samples) is shown beside it. Target: peak < 200 MB (10^6 bytes).
 */
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { bigImage, blobFile, fingerprintFrom, httpsClient, removeDir, report, requireCommands, run, runOk, servingPids, sleep, squashfsPath, startWharf, tempDir, warm, wharfBin, servedBigImage } from './lib.ts';

const clients = 20;
const sampleMs = 100;
requireCommands('curl', 'mksquashfs');

/** VmRSS and VmHWM of a process, in bytes. */
function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

/** Per process, the largest VmRSS and VmHWM, and the sum of VmRSS. */
function serverMemory(pid: number): { rss: number; hwm: number; total: number } {
  const each = servingPids(pid).flatMap((p) => {
    try {
      return [memory(p)];
    } catch {
      return []; // exited between listing and reading
    }
  });
  return { rss: Math.max(...each.map((m) => m.rss)), hwm: Math.max(...each.map((m) => m.hwm)), total: each.reduce((n, m) => n + m.rss, 0) };
}

const MB = 1e6;
const work = await tempDir('rss');
const stops: Array<() => Promise<void>> = [];
try {
  const { image, data, wharf, path, sha } = await servedBigImage(work);
  stops.push(wharf.stop);
  await warm(blobFile(data, sha));
  const size = (await stat(image.rootfs)).size;
  await sleep(500);
  const idle = serverMemory(wharf.pid);
  console.log(`idle: VmRSS ${(idle.rss / MB).toFixed(1)} MB, VmHWM ${(idle.hwm / MB).toFixed(1)} MB (after start and one images.json)`);

  let peak = idle.rss;
  let peakTotal = idle.total;
  const samples: number[] = [];
  const sampler = setInterval(() => {
    const { rss, total } = serverMemory(wharf.pid);
    samples.push(rss);
    peak = Math.max(peak, rss);
    peakTotal = Math.max(peakTotal, total);
  }, sampleMs);
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: clients }, () =>
      run('curl', ['-s', '-f', '--max-time', '480', '--cacert', join(data, 'server.crt'), '-o', '/dev/null', '-w', '%{size_download}', `${wharf.base}/${path}`], {
        timeoutMs: 490_000,
      }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  const after = serverMemory(wharf.pid);
  const failed = results.filter((r) => r.code !== 0 || Number(r.stdout.trim()) !== size);
  if (failed.length) throw new Error(`${failed.length} of ${clients} downloads failed or were short: ${failed.map((r) => `exit ${r.code}, ${r.stdout.trim()} bytes`).join('; ')}`);
  console.log(
    `${clients} x ${size} bytes in ${seconds.toFixed(1)} s (${((clients * size) / 2 ** 20 / seconds).toFixed(0)} MiB/s in all), ` +
      `${samples.length} samples, VmRSS at the end ${(after.rss / MB).toFixed(1)} MB`,
  );
  report(`5 RSS of wharf serve while ${clients} clients download 1 GiB over HTTPS`, [
    { name: `peak VmRSS of the largest serving process (every ${sampleMs} ms)`, wharf: peak / MB, unit: 'MB', target: '< 200 MB', pass: (v) => v < 200 },
    { name: `peak VmRSS, all ${servingPids(wharf.pid).length} serving processes together`, wharf: peakTotal / MB, unit: 'MB', target: '-', pass: () => true, context: true },
    { name: 'VmHWM (kernel high-water mark)', wharf: after.hwm / MB, unit: 'MB', target: '-', pass: () => true, context: true },
    { name: 'idle VmRSS before the downloads', wharf: idle.rss / MB, unit: 'MB', target: '-', pass: () => true, context: true },
    { name: 'aggregate download rate', wharf: (clients * size) / 2 ** 20 / seconds, unit: 'MiB/s', target: '-', pass: () => true, context: true },
  ]);
} finally {
  for (const stop of stops.reverse()) await stop();
  await removeDir(work);
}
