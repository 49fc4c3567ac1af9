/**
 * A no-change re-sync of a 1,000-version upstream: after a first full sync, the wall time of the
 * next `wharf mirror sync` (process start to exit), when nothing upstream changed.
 *
 * The upstream is nginx (plain HTTP on 127.0.0.1) serving a static simplestreams tree written by
 * exportTree() (src/mirror/tree.ts) from bench/store.ts's store: 1,000 images in 100 products x
 * 10 versions, each a distinct metadata tarball (so distinct fingerprints) with one shared tiny
 * squashfs. The mirror keeps 100 versions per product (>= 10), so all 1,000 images are wanted.
 * The first sync is timed as context; then 3 no-change syncs with the CLI (the figure: median)
 * and, as context, 3 with syncMirror() called in this process (no process start, no module
 * loading). Each re-sync is checked to plan no additions and no removals. Target: < 2 s.
 *
 * WHARF_BENCH_IMAGES overrides the image count (for a quick check of the script).
 */
import { join } from 'node:path';
import { mkdir, rm } from 'node:fs/promises';
import { exportTree } from '../src/mirror/tree.ts';
import { syncMirror } from '../src/mirror/sync.ts';
import { buildStore, openBenchStore, tinySquashfs } from './store.ts';
import { median, removeDir, report, requireCommands, runOk, startNginx, tempDir, wharfBin } from './lib.ts';
import { loadTlsIdentity } from '../src/tls.ts';

const images = Number(process.env.WHARF_BENCH_IMAGES ?? 1000);
const rounds = 3;
requireCommands('nginx', 'mksquashfs');

const work = await tempDir('resync');
const stops: Array<() => Promise<void>> = [];
try {
  const source = join(work, 'source');
  const store = await buildStore(source, images, await tinySquashfs(work));
  const tree = join(work, 'tree');
  const exported = await exportTree(store, tree);
  await store.meta.close();
  await rm(source, { recursive: true, force: true });
  if (exported.images !== images) throw new Error(`the tree holds ${exported.images} images, expected ${images}`);
  console.log(`upstream tree: ${exported.images} images, ${exported.files} files`);

  await mkdir(join(work, 'tls'));
  const tls = await loadTlsIdentity({ dataDir: join(work, 'tls') });
  const nginx = await startNginx(join(work, 'nginx'), tree, { cert: tls.certPath, key: join(work, 'tls', 'server.key') });
  stops.push(nginx.stop);
  const upstream = `http://127.0.0.1:${nginx.httpPort}`;

  const data = join(work, 'mirror');
  await runOk(wharfBin, ['--data-dir', data, 'remote', 'add', 'up', upstream]);
  await runOk(wharfBin, ['--data-dir', data, 'mirror', 'add', 'm', 'up', '--keep', '100', '--interval', '0']);
  const sync = () => runOk(wharfBin, ['--data-dir', data, 'mirror', 'sync'], { timeoutMs: 600_000 });

  const first = await sync();
  if (!new RegExp(`^m: added ${images} images`).test(first.stdout)) throw new Error(`unexpected first sync output:\n${first.stdout.slice(0, 2000)}${first.stderr}`);
  console.log(`first sync: ${images} images added in ${(first.ms / 1000).toFixed(1)} s`);

  const cli: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const r = await sync();
    if (!/^m: added 0 images .*removed 0 /.test(r.stdout)) throw new Error(`re-sync changed something:\n${r.stdout.slice(0, 2000)}${r.stderr}`);
    cli.push(r.ms / 1000);
    console.log(`re-sync ${round + 1} (wharf mirror sync): ${cli.at(-1)!.toFixed(3)} s`);
  }

  const mirrorStore = await openBenchStore(data);
  const inProcess: number[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      const mirror = (await mirrorStore.meta.listMirrors()).find((m) => m.name === 'm');
      if (!mirror) throw new Error('mirror m is gone');
      const started = performance.now();
      const r = await syncMirror(mirrorStore, mirror);
      inProcess.push((performance.now() - started) / 1000);
      if (r.plan.add.length || r.plan.remove.length || r.failed.length) throw new Error(`re-sync changed something: ${JSON.stringify({ add: r.plan.add.length, remove: r.plan.remove.length, failed: r.failed })}`);
      console.log(`re-sync ${round + 1} (syncMirror in process): ${inProcess.at(-1)!.toFixed(3)} s`);
    }
    const local = await mirrorStore.meta.listImages();
    if (local.length !== images || local.some((i) => !i.public)) throw new Error(`the mirror holds ${local.length} images (${local.filter((i) => i.public).length} public), expected ${images} public`);
  } finally {
    await mirrorStore.meta.close();
  }

  report(`no-change re-sync of a ${images}-version upstream (nginx over loopback HTTP, median of ${rounds})`, [
    { name: 'wharf mirror sync (CLI)', wharf: median(cli), unit: 's', target: '< 2 s', pass: (v) => v < 2 },
    { name: 'syncMirror() in process', wharf: median(inProcess), unit: 's', target: '< 2 s', pass: (v) => v < 2, context: true },
    { name: 'first full sync', wharf: first.ms / 1000, unit: 's', target: '-', pass: () => true, context: true },
  ]);
} finally {
  for (const stop of stops.reverse()) await stop();
  await removeDir(work);
}
