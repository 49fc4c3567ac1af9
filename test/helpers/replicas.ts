/**
 * `wharf serve` replicas as real processes (each with a data directory of its own, as on hosts of
 * their own), for the tests that kill them: their ports, their logs (stderr) and a readiness wait.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { freePort, wharfBin } from './env.ts';
import { fetchRaw } from './http.ts';
import { until } from './until.ts';

export interface Replicas {
  ports: number[];
  processes: ChildProcess[];
  /** What each has written to stderr so far. */
  logs: string[];
  /** Waits until replica `i` answers /readyz (its log in the error if it does not). */
  ready(i: number, ca: string, ms?: number): Promise<void>;
}

export async function spawnReplicas(t: { after(fn: () => void): void }, work: string, env: Record<string, string>, count = 3): Promise<Replicas> {
  const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
  const logs = ports.map(() => '');
  const processes = ports.map((port, i) => {
    const child = spawn(wharfBin, ['--data-dir', join(work, `replica-${i}`), 'serve', '--https', `127.0.0.1:${port}`], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (logs[i] += d));
    t.after(() => void child.kill('SIGKILL'));
    return child;
  });
  const ready = (i: number, ca: string, ms = 30_000) =>
    until(`replica ${i} ready`, async () => ((await fetchRaw(`https://127.0.0.1:${ports[i]}/readyz`, { ca })).status === 200 ? true : undefined), ms).then(
      () => undefined,
      (err: Error) => {
        throw new Error(`${err.message}; its log:\n${logs[i]!.slice(-2000)}`);
      },
    );
  return { ports, processes, logs, ready };
}
