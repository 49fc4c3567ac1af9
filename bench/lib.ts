/**
 * Shared plumbing for the benchmarks: temp dirs and child processes that are always cleaned up,
 * the 1 GiB split image, a wharf server as a real process, nginx as the reference server, and
 * the side-by-side report. Everything listens on 127.0.0.1 only.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createReadStream, existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { buildMetadataTarball } from '../test/fixtures/images.ts';

export const repoRoot = resolve(import.meta.dirname, '..');
export const wharfBin = join(repoRoot, 'bin', 'wharf');
export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

// ---------------------------------------------------------------- cleanup

const children = new Set<ChildProcess>();
const dirs = new Set<string>();

/**
 * Children run in their own process group (nginx's workers too), so a group kill takes all of
 * them; the groups are ours by construction (pgid = the pid we spawned).
 */
function killGroup(child: ChildProcess, signal: NodeJS.Signals) {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

/** Last-resort cleanup: kill what we started, remove what we created. */
function cleanupSync() {
  for (const child of children) killGroup(child, 'SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanupSync);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    // Kill the children and give them a moment to be reaped (so none outlives us), then clean up.
    const pending = [...children].map((child) => once(child, 'exit'));
    for (const child of children) killGroup(child, 'SIGKILL');
    void Promise.race([Promise.all(pending), sleep(2000)]).finally(() => {
      cleanupSync();
      process.exit(130);
    });
  });
}

export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(process.env.WHARF_BENCH_TMP ?? tmpdir(), `wharf-bench-${prefix}-`));
  dirs.add(dir);
  return dir;
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/** Starts a child that the cleanup above knows about. */
export function startChild(command: string, args: string[], options: { stdout?: 'ignore' | 'pipe'; stderr?: 'ignore' | 'pipe'; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', options.stdout ?? 'ignore', options.stderr ?? 'pipe'], env: options.env ?? process.env, detached: true });
  children.add(child);
  child.on('exit', () => children.delete(child));
  child.on('error', () => children.delete(child));
  return child;
}

/** Stops a child by its own pid: SIGTERM, then SIGKILL to its whole group after a grace period. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a program to completion (killed after timeoutMs); ms is the wall time from spawn to exit. */
export function run(command: string, args: string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const child = startChild(command, args, { stdout: 'pipe', stderr: 'pipe', ...(options.env ? { env: options.env } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), options.timeoutMs ?? 600_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'exit', not 'close': the wall time ends when the process does.
    child.on('exit', (code, signal) => {
      const ms = performance.now() - started;
      clearTimeout(timer);
      // Let the pipes drain before resolving.
      child.on('close', () => resolvePromise({ code: code ?? (signal ? 128 : -1), stdout, stderr, ms }));
    });
  });
}

export async function runOk(command: string, args: string[], options: Parameters<typeof run>[2] = {}): Promise<RunResult> {
  const result = await run(command, args, options);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.code}):\n${result.stderr}${result.stdout}`);
  return result;
}

export function commandExists(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

export function requireCommands(...names: string[]) {
  const missing = names.filter((n) => !commandExists(n));
  if (missing.length) throw new Error(`missing commands: ${missing.join(', ')} (bench/run.sh installs them when run as root)`);
}

// ---------------------------------------------------------------- numbers and reports

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Row {
  /** What is measured, e.g. "HTTPS download". */
  name: string;
  wharf: number;
  /** The reference figure, if the target is a ratio. */
  reference?: number;
  referenceName?: string;
  unit: string;
  /** Human text of the target, e.g. "<= 1.3x" or "<= 100 ms". */
  target: string;
  /** Compared against the ratio when there is a reference, else against the figure itself. */
  pass: (value: number) => boolean;
  /** Rows without a target are context only. */
  context?: boolean;
}

const fmt = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));

/**
 * Prints the side-by-side table and, for bench/run.sh's summary, one machine-readable line per
 * row: RESULT<TAB>bench<TAB>name<TAB>wharf<TAB>reference<TAB>ratio<TAB>target<TAB>verdict.
 */
export function report(bench: string, rows: Row[]) {
  console.log(`\n== ${bench}`);
  const lines = [['measurement', 'wharf', 'reference', 'ratio', 'target', 'verdict']];
  for (const row of rows) {
    const ratio = row.reference !== undefined ? row.wharf / row.reference : undefined;
    const verdict = row.context ? '(context)' : row.pass(ratio ?? row.wharf) ? 'PASS' : 'MISS';
    const ref = row.reference !== undefined ? `${fmt(row.reference)} ${row.unit} (${row.referenceName ?? 'reference'})` : '-';
    const cells = [row.name, `${fmt(row.wharf)} ${row.unit}`, ref, ratio !== undefined ? `${ratio.toFixed(2)}x` : '-', row.target, verdict];
    lines.push(cells);
    process.stdout.write(['RESULT', bench, ...cells].join('\t') + '\n');
  }
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  for (const line of lines) console.log('  ' + line.map((c, i) => c.padEnd(widths[i]!)).join('  '));
}

// ---------------------------------------------------------------- the 1 GiB split image

export interface BigImage {
  meta: string;
  rootfs: string;
  size: number;
}

/**
 * A split container image whose squashfs is ~1 GiB: a tiny tree plus 1 GiB of random (so
 * incompressible) bytes, stored uncompressed (-noI -noD -noF -noX: compressing random data
 * only costs build time, mksquashfs would store those blocks as they are anyway). If
 * WHARF_BENCH_FIXTURES names a directory that already holds the files (bench/run.sh builds them
 * once for all benchmarks), they are used as they are.
 */
export async function bigImage(dir: string): Promise<BigImage> {
  const shared = process.env.WHARF_BENCH_FIXTURES;
  if (shared && existsSync(join(shared, 'rootfs.squashfs')) && existsSync(join(shared, 'meta.tar.xz'))) {
    dir = shared;
  } else {
    await mkdir(dir, { recursive: true });
    await buildMetadataTarball(dir, { properties: { os: 'Benchlinux', release: '1.0', variant: 'default', architecture: 'amd64', description: 'bench' } });
    const tree = join(dir, 'tree');
    await mkdir(join(tree, 'etc'), { recursive: true });
    await writeFile(join(tree, 'etc', 'os-release'), 'NAME="Benchlinux"\nVERSION_ID="1.0"\n');
    await runOk('sh', ['-c', `head -c ${GiB} /dev/urandom > "$1"`, 'sh', join(tree, 'padding.bin')]);
    await runOk('mksquashfs', [tree, join(dir, 'rootfs.squashfs'), '-noappend', '-quiet', '-no-progress', '-all-root', '-noI', '-noD', '-noF', '-noX']);
    await rm(tree, { recursive: true, force: true });
  }
  const meta = join(dir, 'meta.tar.xz');
  const rootfs = join(dir, 'rootfs.squashfs');
  return { meta, rootfs, size: (await stat(meta)).size + (await stat(rootfs)).size };
}

/** Reads files once so that every contender starts from a warm page cache. */
export async function warm(...paths: string[]) {
  for (const path of paths) for await (const _ of createReadStream(path, { highWaterMark: 4 * MiB })) void _;
}

// ---------------------------------------------------------------- servers

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export interface WharfServer {
  child: ChildProcess;
  pid: number;
  httpsPort: number;
  httpPort: number;
  base: string;
  ca: string;
  stop(): Promise<void>;
}

/**
 * `./bin/wharf serve` (or another checkout's) as a real process (bin/wharf execs node, so the pid
 * is node's), with more `serve` options, environment variables and a certificate if given.
 */
export async function startWharf(dataDir: string, bin = wharfBin, more: { args?: string[]; env?: Record<string, string>; tls?: { cert: string; key: string } } = {}): Promise<WharfServer> {
  const httpsPort = await freePort();
  const httpPort = await freePort();
  const child = startChild(bin, ['--data-dir', dataDir, 'serve', '--https', `127.0.0.1:${httpsPort}`, '--http', `127.0.0.1:${httpPort}`, ...(more.tls ? ['--tls-cert', more.tls.cert, '--tls-key', more.tls.key] : []), ...(more.args ?? [])], {
    env: { ...process.env, WHARF_LOG_LEVEL: 'warn', ...more.env },
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wharf serve exited (${child.exitCode}):\n${stderr}`);
    if (/wharf is (serving|a caching mirror)/.test(stderr)) break;
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`wharf serve did not start within 30 s:\n${stderr}`);
    }
    await sleep(50);
  }
  const ca = readFileSync(more.tls?.cert ?? join(dataDir, 'server.crt'), 'utf8');
  return {
    child,
    pid: child.pid!,
    httpsPort,
    httpPort,
    base: `https://127.0.0.1:${httpsPort}`,
    ca,
    stop: () => stopChild(child),
  };
}

export interface Nginx {
  httpPort: number;
  httpsPort: number;
  stop(): Promise<void>;
}

/**
 * nginx serving `root` on two loopback ports: plain HTTP and HTTPS (TLS 1.3 only, with wharf's
 * certificate and key), sendfile on, no access log, as many workers as cores (nginx's `auto`).
 */
export async function startNginx(dir: string, root: string, tls: { cert: string; key: string }): Promise<Nginx> {
  const httpPort = await freePort();
  const httpsPort = await freePort();
  const stop = await runNginx(
    dir,
    `  keepalive_requests 1000000;
  types { application/json json; text/html html; text/javascript js; text/css css; }
  gzip_static on;
  server {
    listen 127.0.0.1:${httpPort};
    listen 127.0.0.1:${httpsPort} ssl;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.3;
    root ${root};
  }`,
    httpsPort,
  );
  return { httpPort, httpsPort, stop };
}

/**
 * nginx with `http` (directives and servers) inside the settings every benchmark shares (workers
 * per core, sendfile, no access log, temp paths in `dir`), started in the foreground; resolves
 * once `port` accepts connections, with the function that stops it.
 */
export async function runNginx(dir: string, http: string, port: number, name = 'nginx'): Promise<() => Promise<void>> {
  requireCommands('nginx');
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(join(dir, 'temp', sub), { recursive: true });
  const conf = join(dir, `${name}.conf`);
  const errorLog = join(dir, `${name}-error.log`);
  await writeFile(
    conf,
    `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes auto;
pid ${join(dir, `${name}.pid`)};
error_log ${errorLog} warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path ${join(dir, 'temp', 'body')};
  proxy_temp_path ${join(dir, 'temp', 'proxy')};
  fastcgi_temp_path ${join(dir, 'temp', 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'temp', 'uwsgi')};
  scgi_temp_path ${join(dir, 'temp', 'scgi')};
  default_type application/octet-stream;
${http}
}
`,
  );
  const child = startChild('nginx', ['-p', dir, '-c', conf, '-e', errorLog, '-g', 'daemon off;']);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}):\n${stderr}${readFileSync(errorLog, 'utf8')}`);
    if (await portOpen(port)) break;
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`nginx did not start:\n${stderr}`);
    }
    await sleep(50);
  }
  return () => stopChild(child);
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export async function portOpen(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((r) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      r(true);
    });
    socket.once('error', () => r(false));
  });
}

// ---------------------------------------------------------------- HTTPS client

export interface Fetched {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A keep-alive HTTPS client that trusts one CA (the server's self-signed certificate). */
export function httpsClient(ca: string) {
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca });
  const get = (url: string, headers: Record<string, string> = {}): Promise<Fetched> =>
    new Promise((resolvePromise, reject) => {
      const req = httpsRequest(url, { agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`timeout: ${url}`)));
      req.on('error', reject);
      req.end();
    });
  return { get, close: () => agent.destroy() };
}

/** Path (without the leading slash) of the root.squashfs item of the only image version in images.json. */
export function squashfsPath(imagesJson: Buffer): string {
  const doc = JSON.parse(imagesJson.toString()) as { products: Record<string, { versions: Record<string, { items: Record<string, { path: string }> }> }> };
  for (const product of Object.values(doc.products)) {
    for (const version of Object.values(product.versions)) {
      const item = version.items['root.squashfs'];
      if (item) return item.path;
    }
  }
  throw new Error('images.json lists no root.squashfs');
}

export function fingerprintFrom(output: string): string {
  const m = /Image imported with fingerprint: ([0-9a-f]{64})/.exec(output);
  if (!m) throw new Error(`no fingerprint in: ${output}`);
  return m[1]!;
}

/** The blob file of a sha256 in a wharf data dir (the embedded file store's layout). */
export const blobFile = (dataDir: string, sha256: string) => join(dataDir, 'blobs', 'sha256', sha256.slice(0, 2), sha256);

export interface WrkResult {
  rps: number;
  /** Requests completed in the run. */
  requests: number;
  latency: string;
  transfer: string;
  errors: string;
}

/** A server's processes: the one started and its children (the serving processes it forks). */
export function servingPids(pid: number): number[] {
  let children: string[] = [];
  try {
    children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).split('\n').filter((l) => l.trim());
  } catch {
    // ps exits 1 when the process has no children (a server of one process).
  }
  return [pid, ...children.map((l) => Number(l.trim()))];
}

/** CPU time (user + system, seconds) that a server's processes have used so far. */
export function cpuSeconds(pid: number): number {
  const tick = 100; // USER_HZ, 100 on Linux
  return servingPids(pid).reduce((sum, p) => {
    try {
      // Fields after the command (which may hold spaces) are read from its closing parenthesis.
      const fields = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return sum + (Number(fields[11]) + Number(fields[12])) / tick;
    } catch {
      return sum; // exited between listing and reading
    }
  }, 0);
}

/** `wrk -t2 -c20` against one URL; fails if any answer was not 2xx/3xx. */
export async function wrk(url: string, seconds: string, headers: string[] = []): Promise<WrkResult> {
  const args = ['-t2', '-c20', `-d${seconds}`, '--timeout', '10s', ...headers.flatMap((h) => ['-H', h]), url];
  const out = (await runOk('wrk', args, { timeoutMs: 120_000 })).stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  if (!Number.isFinite(rps)) throw new Error(`cannot read wrk output:\n${out}`);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1];
  if (non2xx) throw new Error(`${url}: ${non2xx} responses were not 2xx/3xx:\n${out}`);
  return {
    rps,
    requests: Number(/(\d+) requests in/.exec(out)?.[1]),
    latency: /Latency\s+(\S+)/.exec(out)?.[1] ?? '?',
    transfer: /Transfer\/sec:\s+(\S+)/.exec(out)?.[1] ?? '?',
    errors: /Socket errors: ([^\n]+)/.exec(out)?.[1] ?? 'none',
  };
}

/** The 1 GiB image imported into a fresh data dir and served: what download and rss measure. */
export async function servedBigImage(work: string): Promise<{ image: BigImage; data: string; wharf: WharfServer; path: string; sha: string }> {
  const image = await bigImage(join(work, 'fixture'));
  const data = join(work, 'data');
  fingerprintFrom((await runOk(wharfBin, ['--data-dir', data, 'image', 'import', image.meta, image.rootfs], { timeoutMs: 300_000 })).stdout);
  const wharf = await startWharf(data);
  const client = httpsClient(wharf.ca);
  try {
    const path = squashfsPath((await client.get(`${wharf.base}/streams/v1/images.json`)).body);
    return { image, data, wharf, path, sha: /^files\/([0-9a-f]{64})/.exec(path)![1]! };
  } finally {
    client.close();
  }
}

// ---------------------------------------------------------------- the Incus daemon as a reference

/**
 * True once the Incus daemon answers, starting it if it is installed but not running (as
 * ../shared/real-clients.md describes); false if Incus is not installed. Left running afterwards:
 * it is machine-wide state, like the LXD daemon the interop tests use.
 */
export async function incusDaemon(): Promise<boolean> {
  if (!commandExists('incus') || !existsSync('/usr/libexec/incus/incusd')) return false;
  if ((await run('incus', ['admin', 'waitready', '--timeout', '1'])).code === 0) return true;
  spawnSync('sh', ['-c', '(PATH=/usr/libexec/incus:$PATH setsid /usr/libexec/incus/incusd --group root --logfile /var/log/incus-bench.log >/dev/null 2>&1 </dev/null &)']);
  return (await run('incus', ['admin', 'waitready', '--timeout', '60'])).code === 0;
}

/** Wall time of `incus image import FILES` into the daemon (client upload included), then deletes the image. */
export async function incusImportMs(files: string[]): Promise<number> {
  const alias = `wharf-bench-${process.pid}`;
  await run('incus', ['image', 'delete', alias]);
  const { ms } = await runOk('incus', ['image', 'import', ...files, '--alias', alias], { timeoutMs: 900_000 });
  await runOk('incus', ['image', 'delete', alias]);
  return ms;
}

// ---------------------------------------------------------------- the import floor

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
export async function importFloorMs(files: string[], dir: string): Promise<number> {
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

// ---------------------------------------------------------------- the serving floor

/** The floor of an answer: node:cluster forks one worker per core, each a node:https server writing `body` with `headers`. */
const bareServer = `
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
const [cert, key, bodyFile, headersJson, port] = process.argv.slice(2);
if (cluster.isPrimary) {
  for (let i = 0; i < availableParallelism(); i++) cluster.fork();
} else {
  const body = readFileSync(bodyFile);
  const headers = { ...JSON.parse(headersJson), 'content-length': String(body.length) };
  createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
    res.writeHead(200, headers);
    res.end(body);
  }).listen(Number(port), '127.0.0.1');
}
`;

/** Starts the bare cluster answering every request with `bodyFile` and `headers`, with the same certificate (PEM files). */
export async function startBareHttps(dir: string, tls: { cert: string; key: string }, bodyFile: string, headers: Record<string, string | string[] | undefined>): Promise<{ port: number; stop: () => Promise<void> }> {
  await writeFile(join(dir, 'bare.mjs'), bareServer);
  const port = await freePort();
  const bare = spawn(process.execPath, [join(dir, 'bare.mjs'), tls.cert, tls.key, bodyFile, JSON.stringify(headers), String(port)], { stdio: 'ignore' });
  await sleep(1500);
  return { port, stop: async () => void bare.kill('SIGTERM') };
}
