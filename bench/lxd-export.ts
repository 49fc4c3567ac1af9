/**
 * `lxc image export` of a 1 GiB split image from wharf against the same export from the real LXD
 * daemon on the same machine. Both are LXD-protocol remotes of one lxc client, reached over HTTPS
 * on 127.0.0.1 as untrusted (`--public`) clients, each serving the same meta.tar.xz + squashfs
 * (imported as a public image into both). One unmeasured export from each, then 3 rounds that
 * alternate between the two; medians. The exported files are checked (names and sizes; lxc
 * itself checks the fingerprint), then removed, and dirty pages are flushed (`sync`) between
 * exports, outside the timing. Target: wharf at least as fast (ratio of times <= 1.0x).
 * Context: CPU seconds per export of the serving process (/proc/PID/stat) and of the lxc client
 * (GNU time, user + system), and the same export endpoint of both servers read by `curl -o /dev/null` (1 unmeasured +
 * 3 alternating reads each; median), i.e. the servers' speed without lxc's hashing and writing.
 *
 * Needs root, lxd and lxc (Debian lxd, lxd-client). The daemon runs isolated (its own LXD_DIR
 * and LXD_CONF in temp dirs), only on loopback, and is shut down (`lxd shutdown`, then its
 * mounts unmounted and its dir removed) at the end, also on failure or Ctrl-C.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bigImage, fingerprintFrom, freePort, median, removeDir, report, requireCommands, run, runOk, sleep, startWharf, tempDir, warm, wharfBin } from './lib.ts';
import { sha256OfFiles } from '../test/fixtures/images.ts';

if (process.getuid?.() !== 0) {
  console.error('bench/lxd-export.ts needs root (it runs the real LXD daemon)');
  process.exit(2);
}
requireCommands('lxd', 'lxc', 'mksquashfs', 'umount', 'curl', '/usr/bin/time');

// ---------------------------------------------------------------- the LXD daemon, isolated

interface Daemon {
  dir: string;
  conf: string;
  env: NodeJS.ProcessEnv;
  child: ChildProcess;
}
let daemon: Daemon | undefined;

/** Synchronous so it also runs from the 'exit' handler (after a failure or Ctrl-C). */
function stopDaemonSync() {
  const d = daemon;
  if (!d) return;
  daemon = undefined;
  if (d.child.exitCode === null && d.child.signalCode === null) {
    spawnSync('lxd', ['shutdown', '--timeout', '30'], { env: d.env, stdio: 'ignore', timeout: 40_000 });
    if (d.child.exitCode === null && d.child.signalCode === null && d.child.pid !== undefined) {
      try {
        process.kill(-d.child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  for (const mount of ['shmounts', 'devlxd', 'storage-pools']) spawnSync('umount', ['-l', join(d.dir, mount)], { stdio: 'ignore' });
  rmSync(d.dir, { recursive: true, force: true });
  rmSync(d.conf, { recursive: true, force: true });
}
process.on('exit', stopDaemonSync);

async function startDaemon(): Promise<Daemon> {
  const base = process.env.WHARF_BENCH_TMP ?? tmpdir();
  const dir = mkdtempSync(join(base, 'wharf-bench-lxd-'));
  const conf = mkdtempSync(join(base, 'wharf-bench-lxc-'));
  mkdirSync(conf, { recursive: true });
  const env = { ...process.env, LXD_DIR: dir, LXD_CONF: conf };
  const child = spawn('lxd', ['--group', 'root', '--logfile', join(dir, 'lxd.log')], { env, detached: true, stdio: 'ignore' });
  daemon = { dir, conf, env, child };
  const ready = await run('lxd', ['waitready', '--timeout', '60'], { env, timeoutMs: 70_000 });
  if (ready.code !== 0) throw new Error(`lxd did not start: ${ready.stderr}`);
  return daemon;
}

/** utime + stime of a process so far, in seconds (from /proc/PID/stat). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // fields 14 and 15; USER_HZ is 100 on Linux
}

// ---------------------------------------------------------------- the benchmark

const rounds = 3;
const work = await tempDir('lxd-export');
let stopWharf: (() => Promise<void>) | undefined;
try {
  const image = await bigImage(join(work, 'image'));
  const expectedFingerprint = await sha256OfFiles(image.meta, image.rootfs);
  const metaSize = (await stat(image.meta)).size;
  const rootfsSize = (await stat(image.rootfs)).size;
  console.log(`image: ${image.size} bytes (squashfs ${rootfsSize}), fingerprint ${expectedFingerprint.slice(0, 12)}`);

  // wharf: the image imported through the CLI, then served.
  const data = join(work, 'data');
  const fp = fingerprintFrom((await runOk(wharfBin, ['--data-dir', data, 'image', 'import', image.meta, image.rootfs, '--alias', 'big'])).stdout);
  if (fp !== expectedFingerprint) throw new Error(`wharf fingerprint ${fp} != ${expectedFingerprint}`);
  const wharf = await startWharf(data);
  stopWharf = wharf.stop;

  // LXD: the same files imported as a public image, the daemon listening on loopback.
  const d = await startDaemon();
  const lxc = (args: string[], timeoutMs = 600_000) => runOk('lxc', args, { env: d.env, timeoutMs });
  const lxdPort = await freePort();
  await lxc(['config', 'set', 'core.https_address', `127.0.0.1:${lxdPort}`]);
  const imported = await lxc(['image', 'import', image.meta, image.rootfs, 'local:', '--alias', 'big', '--public']);
  console.log(`lxd: image imported in ${(imported.ms / 1000).toFixed(1)} s`);
  const info = await lxc(['image', 'info', 'local:big']);
  if (!info.stdout.includes(expectedFingerprint)) throw new Error(`LXD imported another fingerprint:\n${info.stdout}`);

  // One lxc client, two untrusted HTTPS remotes.
  await lxc(['remote', 'add', 'w', wharf.base, '--public', '--accept-certificate']);
  await lxc(['remote', 'add', 'd', `https://127.0.0.1:${lxdPort}`, '--public', '--accept-certificate']);

  // Both servers start from a warm page cache.
  const lxdImages = join(d.dir, 'images');
  await warm(...(await readdir(lxdImages)).map((f) => join(lxdImages, f)));
  await warm(...(await readdir(join(data, 'blobs', 'sha256'), { recursive: true })).map((f) => join(data, 'blobs', 'sha256', f)).filter((f) => /[0-9a-f]{64}$/.test(f)));

  const out = join(work, 'out');
  const serverPid = { w: wharf.pid, d: d.child.pid! };
  let n = 0;
  /** One export: wall time, CPU seconds of the serving process and of the lxc client. */
  const exportOnce = async (remote: 'w' | 'd'): Promise<{ wall: number; server: number; client: number }> => {
    const dir = join(out, `${remote}-${n++}`);
    await mkdir(dir, { recursive: true });
    const timeFile = join(out, `time-${n}`);
    const cpuBefore = await cpuSeconds(serverPid[remote]);
    const r = await runOk('/usr/bin/time', ['-o', timeFile, '-f', '%U %S', 'lxc', 'image', 'export', `${remote}:big`, `${dir}/`], { env: d.env, timeoutMs: 300_000 });
    const server = (await cpuSeconds(serverPid[remote])) - cpuBefore;
    const client = (await readFile(timeFile, 'utf8')).trim().split(/\s+/).map(Number).reduce((a, b) => a + b, 0);
    const files = await readdir(dir);
    const sizes = (await Promise.all(files.map(async (f) => (await stat(join(dir, f))).size))).sort((a, b) => a - b);
    const want = [metaSize, rootfsSize].sort((a, b) => a - b);
    if (sizes.join() !== want.join()) throw new Error(`export from ${remote} wrote ${files.join(', ')} (${sizes.join(', ')} bytes), expected ${want.join(', ')} bytes`);
    await removeDir(dir);
    await runOk('sync', []);
    await sleep(500);
    return { wall: r.ms / 1000, server, client };
  };

  console.log(`warm-up: wharf ${(await exportOnce('w')).wall.toFixed(2)} s, lxd ${(await exportOnce('d')).wall.toFixed(2)} s`);
  const runs: Record<'w' | 'd', { wall: number; server: number; client: number }[]> = { w: [], d: [] };
  for (let round = 0; round < rounds; round++) {
    const order: ('w' | 'd')[] = round % 2 ? ['d', 'w'] : ['w', 'd'];
    for (const remote of order) runs[remote].push(await exportOnce(remote));
    const show = (x: { wall: number; server: number; client: number }) => `${x.wall.toFixed(2)} s (CPU: server ${x.server.toFixed(2)} s, lxc ${x.client.toFixed(2)} s)`;
    console.log(`round ${round + 1}: wharf ${show(runs.w.at(-1)!)}, lxd ${show(runs.d.at(-1)!)}`);
  }
  const times = { w: runs.w.map((x) => x.wall), d: runs.d.map((x) => x.wall) };

  // Context: the same export endpoint read by curl into /dev/null (no client-side hashing or
  // disk writes), to tell the servers' own speed from the lxc client's.
  const exportUrl = (base: string) => `${base}/1.0/images/${expectedFingerprint}/export`;
  const curlOnce = async (base: string): Promise<number> => {
    const r = await runOk('curl', ['-sS', '--insecure', '--fail', '-o', '/dev/null', '-w', '%{size_download} %{time_total}', exportUrl(base)], { timeoutMs: 120_000 });
    const [size, seconds] = r.stdout.trim().split(' ').map(Number) as [number, number];
    if (!(size > image.size)) throw new Error(`curl got ${size} bytes from ${exportUrl(base)}, expected the multipart body of ${image.size} bytes`);
    return seconds;
  };
  const lxdBase = `https://127.0.0.1:${lxdPort}`;
  await curlOnce(wharf.base);
  await curlOnce(lxdBase);
  const curlTimes = { w: [] as number[], d: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    curlTimes.w.push(await curlOnce(wharf.base));
    curlTimes.d.push(await curlOnce(lxdBase));
  }
  console.log(`curl -o /dev/null: wharf ${curlTimes.w.map((t) => t.toFixed(2)).join(', ')} s; lxd ${curlTimes.d.map((t) => t.toFixed(2)).join(', ')} s`);

  const mbps = (s: number) => image.size / s / 1e6;
  report('lxc image export of a 1 GiB split image (HTTPS, untrusted remote, median of 3)', [
    { name: 'export wall time', wharf: median(times.w), reference: median(times.d), referenceName: 'LXD 5.0.2 daemon', unit: 's', target: '<= 1.0x', pass: (r) => r <= 1.0 },
    { name: 'throughput', wharf: mbps(median(times.w)), reference: mbps(median(times.d)), referenceName: 'LXD 5.0.2 daemon', unit: 'MB/s', target: '-', pass: () => true, context: true },
    { name: 'CPU of the serving process per export', wharf: median(runs.w.map((x) => x.server)), reference: median(runs.d.map((x) => x.server)), referenceName: 'LXD 5.0.2 daemon', unit: 'CPU s', target: '-', pass: () => true, context: true },
    { name: 'CPU of the lxc client per export', wharf: median(runs.w.map((x) => x.client)), reference: median(runs.d.map((x) => x.client)), referenceName: 'from LXD', unit: 'CPU s', target: '-', pass: () => true, context: true },
    { name: 'same endpoint, curl to /dev/null', wharf: mbps(median(curlTimes.w)), reference: mbps(median(curlTimes.d)), referenceName: 'LXD 5.0.2 daemon', unit: 'MB/s', target: '-', pass: () => true, context: true },
  ]);
} finally {
  if (stopWharf) await stopWharf();
  stopDaemonSync();
  await removeDir(work);
}
