/**
 * The built-in launch test (`wharf test IMAGE`): the image imported into this host's Incus (or
 * LXD) daemon and launched as an unprivileged and a privileged container. Each must start, run a
 * command, have no failed systemd unit where systemd runs, and stop within 30 s. A VM image is
 * launched as a VM where the host has KVM, and otherwise skipped with its reason: never reported
 * as passed.
 *
 * It drives the daemon through its own command line client (`incus`, or `lxc`), as a person
 * would, with the environment wharf runs with (INCUS_DIR, LXD_DIR, *_CONF select the daemon).
 * Everything it creates (the image, the instances) is named `wharf-test-...` and removed after.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Image } from '../domain/image.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import { exportImage } from '../core/images.ts';
import type { Store } from '../core/context.ts';

export type LaunchClient = 'incus' | 'lxc';

export interface LaunchCase {
  /** `unprivileged`, `privileged` or `vm`. */
  name: string;
  outcome: 'passed' | 'failed' | 'skipped';
  /** Why it failed or was skipped; what was checked when it passed. */
  detail: string;
}

/** A step may take this long (starting an instance includes unpacking its image the first time). */
const stepMs = 120_000;
/** What the test demands of a stop. */
const stopSeconds = 30;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a client command with no input: `incus launch` reads an instance's config from a stdin that is not a terminal. */
function run(command: string, args: string[], timeoutMs = stepMs): Promise<Ran> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      const timedOut = err && (err as { killed?: boolean }).killed ? `no answer within ${Math.round(timeoutMs / 1000)} s` : '';
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || timedOut || (err ? err.message : '') });
    });
    child.stdin?.end();
  });
}

const said = (r: Ran) => (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' ').slice(0, 500);

/** The client of this host's daemon: `incus` if it answers, else `lxc`. */
export async function localClient(): Promise<LaunchClient> {
  for (const client of ['incus', 'lxc'] as const) if ((await run(client, ['info'], 30_000)).code === 0) return client;
  throw new AppError(ErrorCodes.unavailable, 'No Incus or LXD daemon answers on this host', { hint: 'Install and initialise incus (or lxd), or run the test where one runs.' });
}

/** One instance: launched, a command run in it, systemd's failed units looked for, stopped in time. */
async function launchCase(client: LaunchClient, alias: string, name: string, config: string[], vm: boolean): Promise<LaunchCase> {
  const instance = `wharf-test-${randomBytes(4).toString('hex')}-${name}`;
  try {
    const launched = await run(client, ['launch', alias, instance, ...(vm ? ['--vm'] : []), ...config.flatMap((c) => ['-c', c])]);
    if (launched.code !== 0) return { name, outcome: 'failed', detail: `it did not start: ${said(launched)}` };
    // A container's init may still be on its way: the command is tried for a while.
    let ran: Ran = { code: 1, stdout: '', stderr: 'not tried' };
    for (let i = 0; i < (vm ? 60 : 15) && ran.code !== 0; i++) {
      ran = await run(client, ['exec', instance, '--', 'sh', '-c', 'echo wharf-test'], 30_000);
      if (ran.code !== 0) await new Promise((r) => setTimeout(r, 2_000));
    }
    if (ran.code !== 0 || !ran.stdout.includes('wharf-test')) return { name, outcome: 'failed', detail: `a command did not run in it: ${said(ran)}` };
    const units = await run(client, ['exec', instance, '--', 'sh', '-c', 'if [ -d /run/systemd/system ]; then systemctl is-system-running --wait >/dev/null 2>&1; systemctl --failed --no-legend --plain; echo systemd; fi'], 90_000);
    const failedUnits = units.stdout.split('\n').map((l) => l.trim()).filter((l) => l && l !== 'systemd');
    if (failedUnits.length) return { name, outcome: 'failed', detail: `failed systemd units: ${failedUnits.map((l) => l.split(/\s+/)[0]).join(', ')}` };
    const started = Date.now();
    const stopped = await run(client, ['stop', instance, '--timeout', String(stopSeconds)], (stopSeconds + 15) * 1000);
    const took = Math.round((Date.now() - started) / 1000);
    if (stopped.code !== 0 || took > stopSeconds) return { name, outcome: 'failed', detail: `it did not stop within ${stopSeconds} s: ${said(stopped) || `${took} s`}` };
    return { name, outcome: 'passed', detail: `started, ran a command${units.stdout.includes('systemd') ? ', no failed systemd unit' : ''}, stopped in ${took} s` };
  } finally {
    await run(client, ['delete', '--force', instance]);
  }
}

/** Runs the launch test of `image` on this host's daemon; nothing it made is left behind. */
export async function launchTest(store: Store, image: Image, client?: LaunchClient): Promise<LaunchCase[]> {
  const cli = client ?? (await localClient());
  const dir = await mkdtemp(join(tmpdir(), 'wharf-test-'));
  const alias = `wharf-test-${image.fingerprint.slice(0, 12)}-${randomBytes(3).toString('hex')}`;
  try {
    const files = await exportImage(store, image.fingerprint, dir);
    const imported = await run(cli, ['image', 'import', ...files, '--alias', alias], 600_000);
    if (imported.code !== 0) return [{ name: 'import', outcome: 'failed', detail: `the daemon refused the image: ${said(imported)}` }];
    if (image.type === 'virtual-machine') {
      if (!existsSync('/dev/kvm')) return [{ name: 'vm', outcome: 'skipped', detail: 'this host has no KVM (/dev/kvm)' }];
      return [await launchCase(cli, alias, 'vm', [], true)];
    }
    return [await launchCase(cli, alias, 'unprivileged', [], false), await launchCase(cli, alias, 'privileged', ['security.privileged=true'], false)];
  } finally {
    await run(cli, ['image', 'delete', alias]);
    await rm(dir, { recursive: true, force: true });
  }
}
