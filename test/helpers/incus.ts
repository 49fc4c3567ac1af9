/**
 * The real Incus 6.0.4 client and daemon (Debian packages incus, incus-client from
 * bookworm-backports), isolated per test: the daemon's own INCUS_DIR, and a client configuration
 * directory (INCUS_CONF) per client, since a configuration that joined a server with a token
 * presents its certificate to every remote afterwards. The wharf certificate goes into the system
 * CA store before the daemon starts, as for LXD.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trustSystemWide } from './ca-store.ts';
import { runProcess, type CliResult } from './env.ts';

const daemonBinary = '/usr/libexec/incus/incusd';

export interface IncusClient {
  incus(args: string[], stdin?: string): Promise<CliResult>;
  incusOk(args: string[], stdin?: string): Promise<string>;
  incusJson<T>(args: string[]): Promise<T>;
  env: Record<string, string>;
}

export interface Incus extends IncusClient {
  /** Another client of the same daemon with a configuration (and certificate) of its own. */
  newClient(): Promise<IncusClient>;
  /** The daemon keeps a remote's index for an hour: forgotten, as an hour passing would. */
  forgetIndexes(): Promise<void>;
  dir: string;
}

/** Why the real Incus can't run here, or undefined if it can. Missing tools fail in CI. */
export function incusUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the Incus daemon needs root';
  if (!existsSync(daemonBinary)) return 'incusd is not installed (Debian package incus, from bookworm-backports)';
  for (const tool of ['incus', 'update-ca-certificates']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (Debian package incus-client)`;
  }
  return undefined;
}

type Cleanup = { after(fn: () => Promise<void>): void };

/**
 * A directory of links to every command on PATH but `commands`: a PATH for a daemon that runs as
 * on a host without them (Debian's daemons do not depend on xdelta3, say).
 */
async function pathWithout(commands: string[], into: string): Promise<string> {
  await mkdir(into, { recursive: true });
  const linked = new Set(commands);
  for (const dir of `/usr/libexec/incus:${process.env.PATH}`.split(':')) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (linked.has(name)) continue;
      linked.add(name);
      await symlink(join(dir, name), join(into, name));
    }
  }
  return into;
}

export async function startIncus(t: Cleanup, trustedCerts: string[], options: { without?: string[] } = {}): Promise<Incus> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-incusd-'));
  const path = options.without?.length ? await pathWithout(options.without, join(dir, 'path')) : `/usr/libexec/incus:${process.env.PATH}`;
  const daemonEnv = { ...process.env, INCUS_DIR: dir, PATH: path } as Record<string, string>;
  const untrust = await trustSystemWide(trustedCerts);
  const confs: string[] = [];

  const daemon = spawn(daemonBinary, ['--group', 'root', '--logfile', join(dir, 'incusd.log')], { env: daemonEnv, detached: true, stdio: 'ignore' });
  daemon.unref();
  const ready = spawnSync('incus', ['admin', 'waitready', '--timeout', '60'], { env: daemonEnv, encoding: 'utf8' });
  t.after(async () => {
    spawnSync('incus', ['admin', 'shutdown', '--timeout', '30'], { env: daemonEnv });
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
    for (const mount of ['shmounts', 'guestapi', 'devIncus', 'storage-pools/default']) spawnSync('umount', ['-l', join(dir, mount)]);
    await untrust();
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    await Promise.all(confs.map((c) => rm(c, { recursive: true, force: true })));
  });
  if (ready.status !== 0) throw new Error(`incusd did not start: ${ready.stderr}`);

  const newClient = async (): Promise<IncusClient> => {
    const conf = await mkdtemp(join(tmpdir(), 'wharf-incus-conf-'));
    confs.push(conf);
    // The CLI keeps simplestreams indexes in $HOME/.cache/incus unless told otherwise, and falls
    // back to them whatever the server answers: each client here gets a cache of its own.
    const env = { ...daemonEnv, INCUS_CONF: conf, INCUS_CACHE: join(conf, 'cache') };
    const incus = (args: string[], stdin?: string) => runProcess('incus', args, { env, ...(stdin !== undefined ? { stdin } : {}) });
    const incusOk = async (args: string[], stdin?: string) => {
      const r = await incus(args, stdin);
      if (r.code !== 0) throw new Error(`incus ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
      return r.stdout;
    };
    return { incus, incusOk, incusJson: async <T>(args: string[]) => JSON.parse(await incusOk([...args, '--format', 'json'])) as T, env };
  };
  const forgetIndexes = async () => {
    const cache = join(dir, 'cache');
    for (const entry of await readdir(cache).catch(() => [])) if (entry !== 'resources') await rm(join(cache, entry), { recursive: true, force: true });
  };
  return { ...(await newClient()), newClient, forgetIndexes, dir };
}

/**
 * Makes the daemon able to create instances: a directory storage pool and a root disk in the
 * default profile (`incus admin init --minimal` fails here: it finds no free IPv4 subnet).
 */
export async function prepareForInstances(incus: IncusClient): Promise<void> {
  await incus.incusOk(['storage', 'create', 'default', 'dir']);
  await incus.incusOk(['profile', 'device', 'add', 'default', 'root', 'disk', 'path=/', 'pool=default']);
}
