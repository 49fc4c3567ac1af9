/**
 * Benchmark 4: how long after an import finishes the served images.json lists the new image, on
 * a 1,000-image store with `wharf serve` running as its own process. The images.json is polled
 * over one keep-alive HTTPS connection with If-None-Match every 2 ms until a 200 whose body holds
 * the new fingerprint. Adds start at random moments (50-300 ms apart) so they fall at every
 * phase of the server's change polling.
 *  - core: the bench process imports through src/core/import.ts; the clock starts when
 *    importImage() returns (the metadata transaction has committed). 15 adds.
 *  - CLI: `wharf image import META ROOTFS`; the clock starts when the process has exited. 5 adds.
 * Target: <= 100 ms (median).
 * Context: the time one full render of the index takes (a fresh IndexPublisher's refresh() in
 * this process, median of 5), i.e. the part of the latency that is not waiting for the next poll.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IndexPublisher } from '../src/core/publish.ts';
import { addImage, buildStore, metadataTar, tinySquashfs } from './store.ts';
import { fingerprintFrom, httpsClient, median, removeDir, report, requireCommands, runOk, sleep, startWharf, tempDir, wharfBin } from './lib.ts';

const images = 1000;
const coreAdds = 15;
const cliAdds = 5;
const pollMs = 2;
const deadlineMs = 10_000;
requireCommands('mksquashfs');

const work = await tempDir('publish');
const stops: Array<() => Promise<void>> = [];
try {
  const data = join(work, 'data');
  const squashfs = await tinySquashfs(work);
  const store = await buildStore(data, images, squashfs);
  stops.push(() => store.meta.close());
  const wharf = await startWharf(data);
  stops.push(wharf.stop);
  const client = httpsClient(wharf.ca);
  stops.push(async () => client.close());
  const url = `${wharf.base}/streams/v1/images.json`;
  let etag = String((await client.get(url)).headers.etag);

  /** Polls until images.json names fp; returns the ms from `since`. */
  const waitFor = async (fp: string, since: number): Promise<number> => {
    for (;;) {
      const res = await client.get(url, { 'if-none-match': etag });
      if (res.status === 200) {
        etag = String(res.headers.etag);
        if (res.body.includes(fp)) return performance.now() - since;
      } else if (res.status !== 304) throw new Error(`images.json: HTTP ${res.status}`);
      if (performance.now() - since > deadlineMs) throw new Error(`${fp} not published after ${deadlineMs} ms`);
      await sleep(pollMs);
    }
  };

  const core: number[] = [];
  for (let k = 0; k < coreAdds; k++) {
    await sleep(50 + Math.random() * 250);
    const fp = await addImage(store, images + k, squashfs);
    const done = performance.now();
    core.push(await waitFor(fp, done));
  }
  console.log(`core adds (ms): ${core.map((ms) => ms.toFixed(0)).join(' ')}`);

  const cli: number[] = [];
  const rootfs = join(work, 'tiny.squashfs');
  for (let k = 0; k < cliAdds; k++) {
    const i = images + coreAdds + k;
    const meta = join(work, `meta-${i}.tar`);
    await writeFile(meta, await metadataTar(i));
    await sleep(50 + Math.random() * 250);
    const result = await runOk(wharfBin, ['--data-dir', data, 'image', 'import', meta, rootfs]);
    const exited = performance.now();
    cli.push(await waitFor(fingerprintFrom(result.stdout), exited));
  }
  console.log(`CLI adds (ms): ${cli.map((ms) => ms.toFixed(0)).join(' ')}`);

  const renders: number[] = [];
  for (let k = 0; k < 5; k++) {
    const publisher = new IndexPublisher(store);
    const started = performance.now();
    await publisher.refresh();
    renders.push(performance.now() - started);
  }

  report(`4 one image added to a ${images}-image store until images.json lists it`, [
    { name: `core import, median of ${coreAdds}`, wharf: median(core), unit: 'ms', target: '<= 100 ms', pass: (v) => v <= 100 },
    { name: `core import, max of ${coreAdds}`, wharf: Math.max(...core), unit: 'ms', target: '-', pass: () => true, context: true },
    { name: `CLI import, median of ${cliAdds}`, wharf: median(cli), unit: 'ms', target: '<= 100 ms', pass: (v) => v <= 100 },
    { name: `one index render (${images + coreAdds + cliAdds} images), median of 5`, wharf: median(renders), unit: 'ms', target: '-', pass: () => true, context: true },
  ]);
} finally {
  for (const stop of stops.reverse()) await stop();
  await removeDir(work);
}
