/**
 * Mirroring a 2 GiB upstream over loopback: the wall time of `wharf mirror sync` (process start
 * to exit, into a fresh data dir each time) against one `sha256sum` pass over the same bytes.
 *
 * The upstream is nginx (plain HTTP on 127.0.0.1, sendfile) serving a static simplestreams tree
 * written by exportTree() (src/mirror/tree.ts) from a store of 4 split images (4 products, one
 * version each), each a metadata tarball plus a ~512 MiB squashfs of pseudo-random (so
 * incompressible) bytes. The mirror keeps 3 versions per product, so all 4 images are wanted.
 * Every file of the tree is read once beforehand (warm page cache for both contenders); the
 * sync's blobs are dropped and `sync` is run after each round, outside the timing. 3 rounds
 * alternating sha256sum and wharf; medians. `openssl dgst -sha256` over the same files is shown as
 * context (sha256sum in coreutils 9.1 does not use the CPU's SHA instructions; OpenSSL and Node
 * do). Target: wharf <= 1.3x sha256sum.
 *
 * WHARF_BENCH_MIRROR_MIB overrides the squashfs size in MiB (for a quick check of the script).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { buildMetadataTarball } from '../test/fixtures/images.ts';
import { importImage } from '../src/core/import.ts';
import { exportTree } from '../src/mirror/tree.ts';
import { loadTlsIdentity } from '../src/tls.ts';
import { openBenchStore } from './store.ts';
import { MiB, median, removeDir, report, requireCommands, runOk, sleep, startNginx, tempDir, warm, wharfBin } from './lib.ts';

const imageCount = 4;
const squashfsMiB = Number(process.env.WHARF_BENCH_MIRROR_MIB ?? 512);
const rounds = 3;
requireCommands('nginx', 'mksquashfs', 'sha256sum', 'openssl', 'sync');

/** `bytes` of seed-determined, incompressible data (an AES-256-CTR keystream). */
async function pseudoRandomFile(path: string, bytes: number, seed: string) {
  const key = createHash('sha256').update(`wharf-bench-mirror:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(4 * MiB);
  async function* chunks() {
    for (let left = bytes; left > 0; left -= zeros.length) yield cipher.update(left >= zeros.length ? zeros : zeros.subarray(0, left));
  }
  await pipeline(chunks, createWriteStream(path));
}

/** Image k: a metadata tarball and a squashfs of a tiny tree plus the random padding, uncompressed. */
async function buildImage(dir: string, k: number): Promise<{ meta: string; rootfs: string }> {
  const properties = { os: 'Mirrorlinux', release: String(k + 1), variant: 'default', architecture: 'amd64', description: `Mirrorlinux ${k + 1}`, serial: '20260101_00:00' };
  const meta = (await buildMetadataTarball(dir, { properties, name: `meta-${k}.tar.xz` })).path;
  const tree = join(dir, `tree-${k}`);
  await mkdir(join(tree, 'etc'), { recursive: true });
  await pseudoRandomFile(join(tree, 'padding.bin'), squashfsMiB * MiB, `image-${k}`);
  const rootfs = join(dir, `rootfs-${k}.squashfs`);
  await runOk('mksquashfs', [tree, rootfs, '-noappend', '-quiet', '-no-progress', '-all-root', '-noI', '-noD', '-noF', '-noX']);
  await rm(tree, { recursive: true, force: true });
  return { meta, rootfs };
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

const work = await tempDir('mirror');
const stops: Array<() => Promise<void>> = [];
try {
  // The upstream: a store of 4 images, exported as a static tree, the store then dropped.
  let started = performance.now();
  const source = join(work, 'source');
  const store = await openBenchStore(source);
  const inputs = join(work, 'inputs');
  await mkdir(inputs);
  for (let k = 0; k < imageCount; k++) {
    const { meta, rootfs } = await buildImage(inputs, k);
    await importImage(store, {
      sources: [
        { name: `meta-${k}.tar.xz`, chunks: createReadStream(meta) },
        { name: `rootfs-${k}.squashfs`, chunks: createReadStream(rootfs) },
      ],
    });
    await rm(meta);
    await rm(rootfs);
  }
  const tree = join(work, 'tree');
  const exported = await exportTree(store, tree);
  await store.meta.close();
  await rm(source, { recursive: true, force: true });
  const payload = (await filesUnder(tree)).filter((f) => !f.includes(`${join(tree, 'streams')}/`)).sort();
  const bytes = (await Promise.all(payload.map(async (f) => (await stat(f)).size))).reduce((a, b) => a + b, 0);
  console.log(`upstream tree: ${exported.images} images, ${payload.length} files, ${bytes} bytes (${(bytes / 1024 ** 3).toFixed(2)} GiB), built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  if (exported.images !== imageCount) throw new Error(`the tree holds ${exported.images} images, expected ${imageCount}`);

  await mkdir(join(work, 'tls'));
  const tls = await loadTlsIdentity({ dataDir: join(work, 'tls') });
  const nginx = await startNginx(join(work, 'nginx'), tree, { cert: tls.certPath, key: join(work, 'tls', 'server.key') });
  stops.push(nginx.stop);
  const upstream = `http://127.0.0.1:${nginx.httpPort}`;

  await warm(...payload);
  await runOk('sync', []);

  let n = 0;
  const wharfOnce = async (): Promise<number> => {
    const data = join(work, `mirror-${n++}`);
    await runOk(wharfBin, ['--data-dir', data, 'remote', 'add', 'up', upstream]);
    await runOk(wharfBin, ['--data-dir', data, 'mirror', 'add', 'm', 'up', '--keep', '3', '--interval', '0']);
    const r = await runOk(wharfBin, ['--data-dir', data, 'mirror', 'sync'], { timeoutMs: 600_000 });
    if (!new RegExp(`^m: added ${imageCount} images`).test(r.stdout)) throw new Error(`unexpected sync output:\n${r.stdout}${r.stderr}`);
    await rm(data, { recursive: true, force: true });
    await runOk('sync', []);
    await sleep(500);
    return r.ms / 1000;
  };
  const sha256sumOnce = async (): Promise<number> => (await runOk('sha256sum', payload)).ms / 1000;
  const opensslOnce = async (): Promise<number> => (await runOk('openssl', ['dgst', '-sha256', ...payload])).ms / 1000;

  const times = { wharf: [] as number[], sha256sum: [] as number[], openssl: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    started = performance.now();
    times.sha256sum.push(await sha256sumOnce());
    times.wharf.push(await wharfOnce());
    times.openssl.push(await opensslOnce());
    console.log(`round ${round + 1}: wharf mirror sync ${times.wharf.at(-1)!.toFixed(2)} s, sha256sum ${times.sha256sum.at(-1)!.toFixed(2)} s, openssl ${times.openssl.at(-1)!.toFixed(2)} s`);
  }
  const w = median(times.wharf);
  report(`mirror sync of a ${(bytes / 1024 ** 3).toFixed(2)} GiB upstream (${imageCount} images, nginx over loopback HTTP, median of ${rounds})`, [
    { name: 'wall time', wharf: w, reference: median(times.sha256sum), referenceName: 'sha256sum', unit: 's', target: '<= 1.3x', pass: (r) => r <= 1.3 },
    { name: 'vs openssl dgst', wharf: w, reference: median(times.openssl), referenceName: 'openssl dgst -sha256', unit: 's', target: '-', pass: () => true, context: true },
    { name: 'throughput', wharf: bytes / w / 1e6, reference: bytes / median(times.sha256sum) / 1e6, referenceName: 'sha256sum', unit: 'MB/s', target: '-', pass: () => true, context: true },
  ]);
} finally {
  for (const stop of stops.reverse()) await stop();
  await removeDir(work);
}
