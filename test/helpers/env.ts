/** Shared test plumbing: temp dirs, the CLI as a real process, an in-process server. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { createServer } from 'node:net';
import selfsigned from 'selfsigned';
import { createLogger, silentLogger, type Logger } from '../../src/log.ts';
import { loadConfig } from '../../src/config.ts';
import { startServer, type RunningServer } from '../../src/server.ts';

export const repoRoot = resolve(import.meta.dirname, '..', '..');

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
export const wharfBin = join(repoRoot, 'bin', 'wharf');

export async function tempDir(t: { after(fn: () => Promise<void>): void }, prefix = 'wharf-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion, collecting its output. */
/** `timeoutMs`: the process is killed (SIGTERM) if it runs longer, e.g. a server that should not have started. */
export function runProcess(command: string, args: string[], options: { stdin?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'], ...(options.timeoutMs ? { timeout: options.timeoutMs } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
    // A command that exits without reading its input (gpg --verify) is no failure of the test.
    child.stdin.on('error', () => {});
    child.stdin.end(options.stdin ?? '');
  });
}

/** Runs ./bin/wharf as a user would, with its own data dir. */
export function wharf(dataDir: string, args: string[], options: { stdin?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  return runProcess(wharfBin, ['--data-dir', dataDir, ...args], { env: { ...process.env, ...options.env }, ...(options.stdin !== undefined ? { stdin: options.stdin } : {}), ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
}

/**
 * Runs the CLI in this process (runCli with an io of its own): stdout and stderr collected,
 * `stdin` as its input (not a terminal), and an environment of PATH plus `env` only.
 */
export async function wharfInProcess(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const { runCli } = await import('../../src/cli/main.ts');
  let stdout = '';
  let stderr = '';
  const sink = (add: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        add(chunk.toString('utf8'));
        done();
      },
    });
  const code = await runCli(['node', 'wharf', ...args], {
    stdout: sink((text) => (stdout += text)),
    stderr: sink((text) => (stderr += text)),
    stdin: Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]),
    env: { PATH: process.env.PATH, ...options.env },
  });
  return { code, stdout, stderr };
}

/** Runs the CLI and fails the test with its output if it did not succeed. */
export async function wharfOk(dataDir: string, args: string[], options?: Parameters<typeof wharf>[2]): Promise<string> {
  const result = await wharf(dataDir, args, options);
  if (result.code !== 0) throw new Error(`wharf ${args.join(' ')} failed (${result.code}):\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

export function fingerprintFrom(output: string): string {
  const m = /Image imported with fingerprint: ([0-9a-f]{64})/.exec(output);
  if (!m) throw new Error(`no fingerprint in: ${output}`);
  return m[1]!;
}

/** A real server on 127.0.0.1, random port, stopped after the test. */
export async function serve(
  t: { after(fn: () => Promise<void>): void },
  dataDir: string,
  settings: {
    gracePeriod?: number;
    http?: boolean;
    tlsCert?: string;
    tlsKey?: string;
    maxUploadSize?: number;
    processes?: number;
    log?: Logger;
    /** Mirror mode: the origin, its certificate file, the cache's bounds. */
    mirrorOf?: string;
    originCertificate?: string;
    originKey?: string;
    geoipDb?: string;
    trustedProxies?: string[];
    siteCheckInterval?: number;
    cacheMaxSize?: number;
    originRefresh?: number;
    /** Mirror mode: seconds each index document has (origin_timeout), fills in flight in all and per address. */
    originTimeout?: number;
    cacheMaxFills?: number;
    cacheMaxFillsPerAddress?: number;
    /** Mirror mode: seconds between re-hashings of each cached file (cache_recheck). */
    cacheRecheck?: number;
    /** A shared catalogue (postgres://...) and blob directory: a replica among others. */
    database?: string;
    blobStore?: string;
    s3PathStyle?: boolean;
    /** S3: artifact downloads redirected to presigned URLs (blob_redirect), signed for this endpoint if given. */
    blobRedirect?: boolean;
    blobRedirectEndpoint?: string;
    /** metrics_listen: /metrics on a listener of its own (HOST:PORT). */
    metricsListen?: string;
    /** Seconds a download may wait for the client to take a byte (send_timeout). */
    sendTimeout?: number;
    /** Seconds a request body may go without a byte (body_timeout). */
    bodyTimeout?: number;
  } = {},
): Promise<RunningServer & { base: string }> {
  const config = await loadConfig(dataDir, {
    https: '127.0.0.1:0',
    ...(settings.http ? { http: '127.0.0.1:0' } : {}),
    ...(settings.gracePeriod !== undefined ? { gracePeriod: settings.gracePeriod } : {}),
    ...(settings.maxUploadSize !== undefined ? { maxUploadSize: settings.maxUploadSize } : {}),
    ...(settings.tlsCert ? { tlsCert: settings.tlsCert, tlsKey: settings.tlsKey } : {}),
    ...(settings.mirrorOf ? { mirrorOf: settings.mirrorOf, originCertificate: settings.originCertificate, originKey: settings.originKey } : {}),
    ...(settings.cacheMaxSize !== undefined ? { cacheMaxSize: settings.cacheMaxSize } : {}),
    ...(settings.originRefresh !== undefined ? { originRefresh: settings.originRefresh } : {}),
    ...(settings.originTimeout !== undefined ? { originTimeout: settings.originTimeout } : {}),
    ...(settings.cacheMaxFills !== undefined ? { cacheMaxFills: settings.cacheMaxFills } : {}),
    ...(settings.cacheMaxFillsPerAddress !== undefined ? { cacheMaxFillsPerAddress: settings.cacheMaxFillsPerAddress } : {}),
    ...(settings.cacheRecheck !== undefined ? { cacheRecheck: settings.cacheRecheck } : {}),
    ...(settings.geoipDb ? { geoipDb: settings.geoipDb, trustedProxies: settings.trustedProxies ?? [] } : {}),
    ...(settings.siteCheckInterval !== undefined ? { siteCheckInterval: settings.siteCheckInterval } : {}),
    ...(settings.sendTimeout !== undefined ? { sendTimeout: settings.sendTimeout } : {}),
    ...(settings.metricsListen !== undefined ? { metricsListen: settings.metricsListen } : {}),
    ...(settings.database !== undefined ? { database: settings.database } : {}),
    ...(settings.blobStore !== undefined ? { blobStore: settings.blobStore } : {}),
    ...(settings.s3PathStyle ? { s3PathStyle: 'true' } : {}),
    ...(settings.blobRedirect ? { blobRedirect: 'true' } : {}),
    ...(settings.blobRedirectEndpoint ? { blobRedirectEndpoint: settings.blobRedirectEndpoint } : {}),
    ...(settings.bodyTimeout !== undefined ? { bodyTimeout: settings.bodyTimeout } : {}),
    // Two unless a test asks otherwise: every server test then also checks that what one
    // serving process grants, another honours (the default is one per core).
    serveProcesses: settings.processes ?? 2,
  }, {});
  const server = await startServer(config, settings.log ?? silentLogger);
  t.after(() => server.close());
  return { ...server, base: `https://127.0.0.1:${server.httpsPort}` };
}

/** A logger that keeps its records (parsed), for tests that read what was logged. */
export function capturingLogger(): { log: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  return { log: createLogger({ level: 'info', write: (line) => records.push(JSON.parse(line) as Record<string, unknown>) }), records };
}

/** A client certificate (and its key, `private`) added to the trust store of `dataDir` by the CLI. */
export async function trustedClient(work: string, dataDir: string, name = 'admin'): Promise<{ cert: string; private: string }> {
  const client = await selfsigned.generate([{ name: 'commonName', value: name }], { keyType: 'ec' });
  await writeFile(join(work, `${name}.crt`), client.cert);
  await wharfOk(dataDir, ['trust', 'add', join(work, `${name}.crt`)]);
  return client;
}

/**
 * The TLS certificate and key every replica is given (nothing that must be equal is made per
 * host), for 127.0.0.1 and localhost, written to WORK/server.crt and WORK/server.key.
 */
export async function sharedIdentity(work: string): Promise<{ cert: string; key: string; certPath: string; keyPath: string }> {
  const identity = await selfsigned.generate([{ name: 'commonName', value: 'wharf' }], { keyType: 'ec', extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] }] });
  const certPath = join(work, 'server.crt');
  const keyPath = join(work, 'server.key');
  await writeFile(certPath, identity.cert);
  await writeFile(keyPath, identity.private);
  return { cert: identity.cert, key: identity.private, certPath, keyPath };
}
