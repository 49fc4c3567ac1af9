/**
 * Builds the 1 GiB split image once into DIR (bench/run.sh shares it between the benchmarks
 * through WHARF_BENCH_FIXTURES). Usage: node bench/fixture.ts DIR
 */
import { bigImage } from './lib.ts';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node bench/fixture.ts DIR');
  process.exit(2);
}
const started = performance.now();
const image = await bigImage(dir);
console.log(`fixture: ${image.meta} + ${image.rootfs} (${image.size} bytes) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
