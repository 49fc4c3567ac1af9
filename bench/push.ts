/**
 * Benchmark 19 (issue 26): a builder's push of the 1 GiB split image into staging, as curl sends
 * it (`Authorization: Bearer` push token, the LXD multipart upload of metadata and rootfs over
 * HTTPS, a new TLS connection), against the import floor measured in the same run and runtime:
 * the same files read once, the sha256 of each file and the combined fingerprint hashed on two
 * worker threads, and a durable copy written as it goes (fdatasync every 64 MiB, and at the end).
 * A fresh server and data directory per push; 3 runs alternating; medians. Target: <= 1.3x.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { bigImage, median, removeDir, report, requireCommands, runOk, startWharf, tempDir, warm, wharfBin } from './lib.ts';

const runs = 3;
requireCommands('curl', 'mksquashfs');

/** A worker that hashes what it is sent, one digest per `end`. */
function hasher(): { update(chunk: Buffer): void; digest(): Promise<string>; stop(): Promise<number> } {
  const worker = new Worker(
    `const { parentPort } = require('node:worker_threads');
     const { createHash } = require('node:crypto');
     let hash = createHash('sha256');
     parentPort.on('message', (m) => {
       if (m === 'end') { parentPort.postMessage(hash.digest('hex')); hash = createHash('sha256'); }
       else hash.update(new Uint8Array(m));
     });`,
    { eval: true },
  );
  return {
    update: (chunk) => {
      const copy = chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength);
      worker.postMessage(copy, [copy as ArrayBuffer]);
    },
    digest: () => new Promise((resolve) => (worker.once('message', resolve), worker.postMessage('end'))),
    stop: () => worker.terminate(),
  };
}

/** The floor: each file read once; per-file and combined sha256 on two threads; a durable copy. */
async function importFloorMs(files: string[], dir: string): Promise<number> {
  const perFile = hasher();
  const combined = hasher();
  const started = performance.now();
  for (const [n, file] of files.entries()) {
    const out = await open(join(dir, `copy-${n}`), 'w');
    let unsynced = 0;
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      perFile.update(chunk);
      combined.update(chunk);
      await out.write(chunk);
      unsynced += chunk.length;
      if (unsynced >= 64 << 20) await out.datasync(), (unsynced = 0);
    }
    await out.datasync();
    await out.close();
    await perFile.digest();
  }
  await combined.digest();
  const ms = performance.now() - started;
  await Promise.all([perFile.stop(), combined.stop()]);
  return ms;
}

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
