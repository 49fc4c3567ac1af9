/**
 * Benchmark 18: making a version's delta (src/core/deltas.ts `makeDelta`: both rootfs read from
 * the store, `xdelta3 -e`, the delta decoded and checked against the new rootfs, stored and
 * recorded) against `xdelta3 -e -s OLD NEW OUT` alone on the same two files, the floor of the job.
 * The pair: two squashfs of about 200 MiB (`WHARF_BENCH_DELTA_MIB`), the second with one file in
 * twenty rewritten, as consecutive daily builds differ. 3 rounds each, alternated; medians.
 * Target: <= 1.2x. Context: the delta's size against the new rootfs.
 */
import { createReadStream } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { importImage } from '../src/core/import.ts';
import { makeDelta } from '../src/core/deltas.ts';
import { chunksOf, metadataTar, openBenchStore } from './store.ts';
import { median, removeDir, report, requireCommands, runOk, tempDir } from './lib.ts';

const totalMiB = Number(process.env.WHARF_BENCH_DELTA_MIB ?? 200);
const files = 100;
const rounds = 3;
requireCommands('xdelta3', 'mksquashfs');

const work = await tempDir('deltas');
try {
  // Two builds: the same files, one in twenty rewritten.
  const tree = join(work, 'tree');
  await mkdir(tree, { recursive: true });
  const perFile = Math.floor((totalMiB * 1024 * 1024) / files);
  for (let i = 0; i < files; i++) await writeFile(join(tree, `f${i}`), randomBytes(perFile));
  const squash = async (name: string) => {
    const path = join(work, name);
    await runOk('mksquashfs', [tree, path, '-noappend', '-quiet', '-no-progress', '-all-root', '-mkfs-time', '0', '-all-time', '0']);
    return path;
  };
  const oldFs = await squash('old.squashfs');
  for (let i = 0; i < files; i += 20) await writeFile(join(tree, `f${i}`), randomBytes(perFile));
  const newFs = await squash('new.squashfs');
  console.log(`pair: ${((await stat(oldFs)).size / 2 ** 20).toFixed(0)} MiB and ${((await stat(newFs)).size / 2 ** 20).toFixed(0)} MiB`);

  const store = await openBenchStore(join(work, 'data'));
  const add = async (i: number, rootfs: string) =>
    importImage(store, {
      sources: [
        { name: `meta-${i}.tar`, chunks: chunksOf(await metadataTar(i, 'versions')) },
        { name: 'rootfs.squashfs', chunks: createReadStream(rootfs, { highWaterMark: 1 << 20 }) },
      ],
    });
  const [oldImage, newImage] = [await add(1, oldFs), await add(2, newFs)];

  const wharf: number[] = [];
  const floor: number[] = [];
  let deltaSize = 0;
  for (let round = 0; round < rounds; round++) {
    let started = performance.now();
    await runOk('xdelta3', ['-e', '-f', '-s', oldFs, newFs, join(work, 'floor.vcdiff')]);
    floor.push((performance.now() - started) / 1000);
    await rm(join(work, 'floor.vcdiff'), { force: true });
    // Each round from a version without its delta: the image as imported.
    started = performance.now();
    deltaSize = (await makeDelta(store, newImage, oldImage)).size;
    wharf.push((performance.now() - started) / 1000);
  }
  await store.meta.close();
  console.log(`wharf (s): ${wharf.map((s) => s.toFixed(2)).join(' ')}; xdelta3 alone (s): ${floor.map((s) => s.toFixed(2)).join(' ')}`);
  report(`18 a version's delta, ${totalMiB} MiB squashfs pair`, [
    { name: `make, check and store the delta, median of ${rounds}`, wharf: median(wharf), reference: median(floor), referenceName: 'xdelta3 -e alone', unit: 's', target: '<= 1.2x', pass: (r) => r <= 1.2 },
    { name: 'delta size against the new rootfs', wharf: deltaSize / newImage.rootfs!.size, unit: 'x', target: '-', pass: () => true, context: true },
  ]);
} finally {
  await removeDir(work);
}
