/**
 * Benchmark 1: `wharf image import META ROOTFS` of a 1 GiB split image (squashfs rootfs) against
 * one `sha256sum` pass over the same bytes. Both start from a warm page cache; each runs 3 times
 * (alternating) and the medians are compared. Target: wharf <= 1.3x sha256sum.
 * `openssl dgst -sha256` (which, unlike coreutils, uses the CPU's SHA extensions) is shown as context.
 */
import { join } from 'node:path';
import { bigImage, fingerprintFrom, median, removeDir, report, requireCommands, runOk, tempDir, warm, wharfBin } from './lib.ts';

const runs = 3;
requireCommands('sha256sum', 'openssl', 'mksquashfs');
const work = await tempDir('import');
try {
  const image = await bigImage(join(work, 'fixture'));
  console.log(`image: ${image.size} bytes (${(image.size / 2 ** 30).toFixed(2)} GiB)`);
  await warm(image.meta, image.rootfs);

  const wharf: number[] = [];
  const sha256sum: number[] = [];
  const openssl: number[] = [];
  for (let i = 0; i < runs; i++) {
    sha256sum.push((await runOk('sha256sum', [image.meta, image.rootfs])).ms);
    openssl.push((await runOk('openssl', ['dgst', '-sha256', image.meta, image.rootfs])).ms);
    const data = join(work, `data-${i}`);
    const result = await runOk(wharfBin, ['--data-dir', data, 'image', 'import', image.meta, image.rootfs], { timeoutMs: 300_000 });
    fingerprintFrom(result.stdout);
    wharf.push(result.ms);
    await removeDir(data);
    console.log(`run ${i + 1}: wharf ${result.ms.toFixed(0)} ms, sha256sum ${sha256sum[i]!.toFixed(0)} ms, openssl ${openssl[i]!.toFixed(0)} ms`);
  }
  const w = median(wharf) / 1000;
  report('1 import of a 1 GiB split image', [
    { name: 'wall time, median of 3', wharf: w, reference: median(sha256sum) / 1000, referenceName: 'sha256sum', unit: 's', target: '<= 1.3x', pass: (r) => r <= 1.3 },
    { name: 'wall time, median of 3', wharf: w, reference: median(openssl) / 1000, referenceName: 'openssl dgst -sha256', unit: 's', target: '-', pass: () => true, context: true },
    { name: 'import throughput', wharf: image.size / 2 ** 20 / w, unit: 'MiB/s', target: '-', pass: () => true, context: true },
  ]);
} finally {
  await removeDir(work);
}
