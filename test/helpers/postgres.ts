/**
 * A real PostgreSQL for tests: the server `WHARF_TEST_POSTGRES` names (a URL of a role that may
 * create databases; scripts/test.sh starts one for the whole run), or else a throwaway cluster of
 * Debian's PostgreSQL started here, on loopback, stopped when the process exits. Each caller gets
 * a database of its own.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { freePort } from './env.ts';

const binaries = '/usr/lib/postgresql/15/bin';

let server: Promise<string> | undefined;

/** Runs a PostgreSQL program, as the postgres user when this is root (the server refuses root). */
function runPostgres(program: string, args: string[]) {
  const asRoot = process.getuid?.() === 0;
  const command = asRoot ? 'runuser' : join(binaries, program);
  const argv = asRoot ? ['-u', 'postgres', '--', join(binaries, program), ...args] : args;
  const result = spawnSync(command, argv, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${program} failed: ${result.stderr || result.stdout}`);
}

/** A cluster of this process's own: its URL, and a way to stop and start it (the database going away). */
export interface Cluster {
  url: string;
  stop(): void;
  start(): void;
}

async function startCluster(): Promise<string> {
  return (await ownCluster()).url;
}

/** A throwaway cluster for this caller alone, which a test may stop and start again. */
export async function ownCluster(): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-postgres-'));
  if (process.getuid?.() === 0) chownSync(dir, Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout), Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout));
  const data = join(dir, 'data');
  runPostgres('initdb', ['-D', data, '-U', 'wharf', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8']);
  const port = await freePort();
  // Durability is the engine's business, not these tests': no fsync, a socket in its own folder.
  const start = () => runPostgres('pg_ctl', ['-D', data, '-w', '-l', join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`, 'start']);
  const stop = () => runPostgres('pg_ctl', ['-D', data, '-w', '-m', 'immediate', 'stop']);
  start();
  process.once('exit', () => {
    spawnSync(process.getuid?.() === 0 ? 'runuser' : join(binaries, 'pg_ctl'), process.getuid?.() === 0 ? ['-u', 'postgres', '--', join(binaries, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop'] : ['-D', data, '-m', 'immediate', 'stop']);
    rmSync(dir, { recursive: true, force: true });
  });
  return { url: `postgres://wharf@127.0.0.1:${port}/postgres`, stop, start };
}

/** The URL of a new, empty database (dropped with the server, or by the run's end). */
export async function freshDatabase(): Promise<string> {
  server ??= process.env.WHARF_TEST_POSTGRES ? Promise.resolve(process.env.WHARF_TEST_POSTGRES) : startCluster();
  const url = new URL(await server);
  const name = `wharf_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url.href });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'`);
  } finally {
    await admin.end();
  }
  url.pathname = `/${name}`;
  return url.href;
}
