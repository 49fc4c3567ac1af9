/**
 * Benchmark 19 (issue 26): a builder's push of the 1 GiB split image into staging, as curl sends
 * it (`Authorization: Bearer` push token, the LXD multipart upload of metadata and rootfs over
 * HTTPS, a new TLS connection), against the import floor measured in the same run and runtime:
 * the same files read once, the sha256 of each file and the combined fingerprint hashed on two
 * worker threads, and a durable copy written as it goes (fdatasync every 64 MiB, and at the end).
 * A fresh server and data directory per push; 3 runs alternating; medians. Target: <= 1.3x.
 */
import { join } from 'node:path';
import { bigImage, importFloorMs, median, removeDir, report, requireCommands, runOk, startWharf, tempDir, warm, wharfBin } from './lib.ts';

const runs = 3;
requireCommands('curl', 'mksquashfs');

const work = await tempDir('push');
try {
  const image = await bigImage(join(work, 'fixture'));
  await warm(image.meta, image.rootfs);
  const pushes: number[] = [];
  const floors: number[] = [];
  for (let i = 0; i < runs; i++) {
    const floorDir = join(work, `floor-${i}`);
    await runOk('mkdir', ['-p', floorDir]);
    floors.push(await importFloorMs([image.meta, image.rootfs], floorDir));
    await removeDir(floorDir);

    const data = join(work, `data-${i}`);
    const token = (await runOk(wharfBin, ['--data-dir', data, 'token', 'add', 'bench', '--push', '*:*:*:*'])).stdout.trim();
    const server = await startWharf(data);
    try {
      await runOk('sh', ['-c', 'printf %s "$1" > "$2"', 'sh', server.ca, join(work, 'ca.crt')]);
      const curl = await runOk('curl', ['-sS', '--fail-with-body', '--cacert', join(work, 'ca.crt'), '-H', `Authorization: Bearer ${token}`, '-F', `metadata=@${image.meta}`, '-F', `rootfs=@${image.rootfs}`, '-o', '/dev/null', '-w', '%{time_total}', `${server.base}/1.0/images`], { timeoutMs: 600_000 });
      pushes.push(Number(curl.stdout) * 1000);
    } finally {
      await server.stop();
    }
    const staged = (await runOk(wharfBin, ['--data-dir', data, 'image', 'staged', '--format', 'json'])).stdout;
    if (JSON.parse(staged).length !== 1) throw new Error(`the push did not land in staging: ${staged}`);
    await removeDir(data);
    console.log(`run ${i + 1}: push ${pushes[i]!.toFixed(0)} ms, import floor ${floors[i]!.toFixed(0)} ms`);
  }
  report('19 push of a 1 GiB split image into staging (push token, HTTPS multipart)', [
    { name: 'wall time, median of 3', wharf: median(pushes) / 1000, reference: median(floors) / 1000, referenceName: 'import floor: read once, sha256s on threads, durable copy', unit: 's', target: '<= 1.3x', pass: (r) => r <= 1.3 },
    { name: 'push throughput', wharf: image.size / 2 ** 20 / (median(pushes) / 1000), unit: 'MiB/s', target: '-', pass: () => true, context: true },
  ]);
} finally {
  await removeDir(work);
}
