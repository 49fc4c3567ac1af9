/**
 * The real LXD 5.0.2 client and daemon (Debian packages lxd-client, lxd), isolated per test file:
 * their own LXD_DIR and LXD_CONF, and the wharf certificate added to the system CA store (the
 * only trust simplestreams remotes use) before the daemon starts, since it reads the store once.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trustSystemWide } from './ca-store.ts';
import { runProcess, type CliResult } from './env.ts';

export interface Lxd {
  lxc(args: string[], stdin?: string): Promise<CliResult>;
  lxcOk(args: string[], stdin?: string): Promise<string>;
  lxcJson<T>(args: string[]): Promise<T>;
  env: Record<string, string>;
}

/** Why the real clients can't run here, or undefined if they can. Missing tools fail in CI. */
export function lxdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the LXD daemon needs root';
  for (const tool of ['lxc', 'lxd', 'update-ca-certificates']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (Debian packages lxd, lxd-client)`;
  }
  return undefined;
}

type Cleanup = { after(fn: () => Promise<void>): void };

export async function startLxd(t: Cleanup, trustedCerts: string[]): Promise<Lxd> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-lxd-'));
  const conf = await mkdtemp(join(tmpdir(), 'wharf-lxc-'));
  const env = { ...process.env, LXD_DIR: dir, LXD_CONF: conf } as Record<string, string>;

  const untrust = await trustSystemWide(trustedCerts);

  const daemon = spawn('lxd', ['--group', 'root', '--logfile', join(dir, 'lxd.log')], { env, detached: true, stdio: 'ignore' });
  const ready = spawnSync('lxd', ['waitready', '--timeout', '60'], { env, encoding: 'utf8' });
  t.after(async () => {
    spawnSync('lxd', ['shutdown', '--timeout', '30'], { env });
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
    spawnSync('umount', ['-l', join(dir, 'shmounts')], { env });
    spawnSync('umount', ['-l', join(dir, 'devlxd')], { env });
    await untrust();
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    await rm(conf, { recursive: true, force: true });
  });
  if (ready.status !== 0) throw new Error(`lxd did not start: ${ready.stderr}`);

  const lxc = (args: string[], stdin?: string) => runProcess('lxc', args, { env, ...(stdin !== undefined ? { stdin } : {}) });
  const lxcOk = async (args: string[], stdin?: string) => {
    const r = await lxc(args, stdin);
    if (r.code !== 0) throw new Error(`lxc ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  return { lxc, lxcOk, lxcJson: async <T>(args: string[]) => JSON.parse(await lxcOk([...args, '--format', 'json'])) as T, env };
}
