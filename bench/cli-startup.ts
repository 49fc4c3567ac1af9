/**
 * Benchmark 6: start-up. Wall time (spawn to exit) of `./bin/wharf --help` and of `./bin/wharf
 * image list` on a 1,000-image store, against `node -e 0` (the runtime's own floor) measured in
 * the same rounds. Hyperfine-style: 3 warm-up rounds, then 20 rounds that each run every command
 * once, in turn, so that load from elsewhere on the machine falls on all of them alike; the
 * figure is the median, shown with mean ± standard deviation and min–max. Running the
 * TypeScript sources directly (`node src/main.ts`, what bin/wharf runs when the build is not
 * current) is shown as context. Target: <= 0.15 s each.
 *
 * Then memory: VmRSS of each process of an idle `./bin/wharf serve` on that store (it may fork
 * serving processes), 2 s after it said it is serving; the figure is the largest process, median
 * of 3 starts. Reference: an idle `node` process; context: a minimal fastify server (one route,
 * plain HTTP). Target: < 80 MB (10^6 bytes) per process.
 *
 * bin/wharf runs the compiled build (dist/) only while it is current: this benchmark builds it
 * first if needed, and fails if it went stale during the run (someone edited src/).
 *
 * WHARF_BENCH_BASELINE=DIR adds the same measurements of another checkout's bin/wharf (say, an
 * older commit: `git worktree add DIR COMMIT && (cd DIR && npm ci)`) as context rows.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildStore, tinySquashfs } from './store.ts';
import { httpsClient, median, removeDir, report, repoRoot, requireCommands, run, sleep, startChild, startWharf, stopChild, tempDir, wharfBin, type Row } from './lib.ts';

const images = 1000;
const warmups = 3;
const rounds = 20;
const serverStarts = 3;
const idleMs = 2000;
const targetSeconds = 0.15;
const targetMB = 80;
const MB = 1e6;

requireCommands('mksquashfs');
const node = join(repoRoot, 'node_modules', '.bin', 'node');
const baseline = process.env.WHARF_BENCH_BASELINE;
const baselineBin = baseline ? join(baseline, 'bin', 'wharf') : undefined;

/** bin/wharf's rule: dist/ is used when no file or directory under src/ (nor a tsconfig) is newer than its stamp. */
function buildIsCurrent(): boolean {
  const stamp = statSync(join(repoRoot, 'dist', '.build-stamp'), { throwIfNoEntry: false });
  if (!stamp) return false;
  const newer = (path: string): boolean => {
    const info = statSync(path);
    if (info.mtimeMs > stamp.mtimeMs) return true;
    return info.isDirectory() && readdirSync(path).some((name) => newer(join(path, name)));
  };
  return ![join(repoRoot, 'src'), join(repoRoot, 'tsconfig.json'), join(repoRoot, 'tsconfig.build.json')].some(newer);
}

function ensureBuild() {
  if (buildIsCurrent()) return;
  console.log('dist/ is missing or older than src/: building it (npm run build)');
  const result = spawnSync('bash', [join(repoRoot, 'scripts', 'build.sh')], { stdio: 'inherit' });
  if (result.status !== 0 || !buildIsCurrent()) throw new Error('the build failed, or src/ changed while it ran');
}

interface Stats {
  median: number;
  mean: number;
  sd: number;
  min: number;
  max: number;
}

function stats(values: number[]): Stats {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1));
  return { median: median(values), mean, sd, min: Math.min(...values), max: Math.max(...values) };
}

/** Rows of the table `image list` prints: each image's first line holds its 12-digit fingerprint. */
const listedImages = (table: string) => table.match(/^\|[^|\n]*\| [0-9a-f]{12} \|/gm)?.length ?? 0;

/** VmRSS, RssAnon and RssFile of a process, in bytes. */
function memory(pid: number): { rss: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { rss: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile') };
}

/** A process and its descendants: `wharf serve` may fork serving processes. */
function processTree(pid: number): number[] {
  const children = readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
    readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
  );
  return [pid, ...children.flatMap(processTree)];
}

/** The memory of each process of a tree, largest VmRSS first. */
function treeMemory(pid: number) {
  return processTree(pid)
    .map(memory)
    .sort((a, b) => b.rss - a.rss);
}

/** VmRSS of a node process that has printed `ready` on stdout and then idled for idleMs. */
async function idleNodeRss(args: string[]): Promise<number> {
  const child = startChild(node, args, { stdout: 'pipe' });
  try {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    const deadline = Date.now() + 10_000;
    while (!out.includes('ready')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`node ${args.join(' ')} did not start`);
      await sleep(20);
    }
    await sleep(idleMs);
    return memory(child.pid!).rss;
  } finally {
    await stopChild(child);
  }
}

ensureBuild();
console.log(`bin/wharf runs ${join(repoRoot, 'dist', 'main.js')} (the build is current)`);
const work = await tempDir('cli-startup');
try {
  const data = join(work, 'data');
  const store = await buildStore(data, images, await tinySquashfs(work));
  await store.meta.close();

  const commands: { name: string; command: string; args: string[]; check?: (stdout: string) => void }[] = [
    { name: 'node -e 0', command: node, args: ['-e', '0'] },
    { name: 'wharf --help', command: wharfBin, args: ['--help'] },
    {
      name: `wharf image list (${images} images)`,
      command: wharfBin,
      args: ['--data-dir', data, 'image', 'list'],
      check: (stdout) => {
        if (listedImages(stdout) !== images) throw new Error(`image list showed ${listedImages(stdout)} images, expected ${images}`);
      },
    },
    { name: 'node src/main.ts --help', command: node, args: ['--disable-warning=ExperimentalWarning', join(repoRoot, 'src', 'main.ts'), '--help'] },
    {
      name: `node src/main.ts image list (${images})`,
      command: node,
      args: ['--disable-warning=ExperimentalWarning', join(repoRoot, 'src', 'main.ts'), '--data-dir', data, 'image', 'list'],
    },
    ...(baselineBin
      ? [
          { name: 'baseline wharf --help', command: baselineBin, args: ['--help'] },
          { name: `baseline wharf image list (${images})`, command: baselineBin, args: ['--data-dir', data, 'image', 'list'] },
        ]
      : []),
  ];
  const times = commands.map(() => [] as number[]);
  for (let round = 0; round < warmups + rounds; round++) {
    for (const [i, c] of commands.entries()) {
      const result = await run(c.command, c.args, { timeoutMs: 60_000 });
      if (result.code !== 0) throw new Error(`${c.name} failed (${result.code}):\n${result.stderr}`);
      c.check?.(result.stdout);
      if (round >= warmups) times[i]!.push(result.ms / 1000);
    }
  }
  if (!buildIsCurrent()) throw new Error('src/ changed during the run, so bin/wharf ran the sources for part of it: run the benchmark again');

  const s = times.map(stats);
  const ms = (v: number) => `${(v * 1000).toFixed(1)} ms`;
  console.log(`\n${rounds} rounds after ${warmups} warm-up rounds, wall time from spawn to exit:`);
  for (const [i, c] of commands.entries()) {
    const t = s[i]!;
    console.log(`  ${c.name.padEnd(36)} median ${ms(t.median).padStart(9)}   mean ${ms(t.mean).padStart(9)} ± ${ms(t.sd).padStart(8)}   min ${ms(t.min).padStart(9)}   max ${ms(t.max).padStart(9)}`);
  }

  // Memory of an idle server, against an idle node and a minimal fastify server.
  const serveRss: ReturnType<typeof treeMemory>[] = [];
  const afterIndex: number[] = [];
  const baselineRss: number[] = [];
  for (let i = 0; i < serverStarts; i++) {
    const wharf = await startWharf(data);
    try {
      await sleep(idleMs);
      serveRss.push(treeMemory(wharf.pid));
      const client = httpsClient(wharf.ca);
      const index = await client.get(`${wharf.base}/streams/v1/images.json`);
      client.close();
      if (index.status !== 200) throw new Error(`images.json: HTTP ${index.status}`);
      await sleep(500);
      afterIndex.push(treeMemory(wharf.pid)[0]!.rss);
    } finally {
      await wharf.stop();
    }
    if (!buildIsCurrent()) throw new Error('src/ changed during the run, so bin/wharf ran the sources for part of it: run the benchmark again');
    if (baselineBin) {
      const old = await startWharf(data, baselineBin);
      await sleep(idleMs);
      baselineRss.push(treeMemory(old.pid)[0]!.rss);
      await old.stop();
    }
  }
  const bareNode: number[] = [];
  const fastify: number[] = [];
  const fastifyUrl = pathToFileURL(join(repoRoot, 'node_modules', 'fastify', 'fastify.js')).href;
  for (let i = 0; i < serverStarts; i++) {
    bareNode.push(await idleNodeRss(['-e', 'console.log("ready"); setInterval(() => {}, 1000)']));
    fastify.push(
      await idleNodeRss([
        '--input-type=module',
        '-e',
        `const { default: Fastify } = await import(${JSON.stringify(fastifyUrl)}); const app = Fastify(); app.get('/', async () => ({ ok: true })); await app.listen({ host: '127.0.0.1', port: 0 }); console.log('ready');`,
      ]),
    );
  }
  const largest = serveRss.map((tree) => tree[0]!);
  const rss = median(largest.map((m) => m.rss)) / MB;
  const anon = median(largest.map((m) => m.anon)) / MB;
  const file = median(largest.map((m) => m.file)) / MB;
  const mb = (m: { rss: number }) => (m.rss / MB).toFixed(1);
  console.log(`\nidle wharf serve, VmRSS of each process (${serverStarts} starts): ${serveRss.map((tree) => tree.map(mb).join(' + ')).join(' / ')} MB`);
  console.log(`largest process, median: RssAnon ${anon.toFixed(1)} MB + RssFile ${file.toFixed(1)} MB (RssFile: mostly the node binary's own pages)`);
  console.log(`idle node: ${bareNode.map((v) => (v / MB).toFixed(1)).join(' / ')} MB; minimal fastify server: ${fastify.map((v) => (v / MB).toFixed(1)).join(' / ')} MB`);

  const floor = s[0]!.median;
  const timeRow = (i: number, context = false): Row => ({
    name: `${commands[i]!.name}, median of ${rounds}`,
    wharf: s[i]!.median,
    reference: floor,
    referenceName: 'node -e 0',
    unit: 's',
    target: context ? '-' : `<= ${targetSeconds} s`,
    pass: (ratio) => ratio * floor <= targetSeconds,
    ...(context ? { context } : {}),
  });
  const idleNode = median(bareNode) / MB;
  report(`6 start-up: CLI wall time, idle server memory`, [
    timeRow(1),
    timeRow(2),
    timeRow(3, true),
    timeRow(4, true),
    { name: `idle wharf serve VmRSS, largest process, median of ${serverStarts}`, wharf: rss, reference: idleNode, referenceName: 'idle node', unit: 'MB', target: `< ${targetMB} MB`, pass: (ratio) => ratio * idleNode < targetMB },
    { name: 'idle wharf serve VmRSS, largest process', wharf: rss, reference: median(fastify) / MB, referenceName: 'minimal fastify server', unit: 'MB', target: '-', pass: () => true, context: true },
    { name: 'wharf serve VmRSS after one images.json, largest process', wharf: median(afterIndex) / MB, unit: 'MB', target: '-', pass: () => true, context: true },
    ...(baselineBin
      ? [
          timeRow(5, true),
          timeRow(6, true),
          { name: `baseline idle wharf serve VmRSS, largest process, median of ${serverStarts}`, wharf: median(baselineRss) / MB, reference: idleNode, referenceName: 'idle node', unit: 'MB', target: '-', pass: () => true, context: true },
        ]
      : []),
  ]);
} finally {
  await removeDir(work);
}
