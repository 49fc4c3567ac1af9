/**
 * The extra serving processes of `wharf serve`. Each one opens the same data directory, renders
 * the index itself (the publisher polls the catalogue's change counter, so a change reaches every
 * process within its poll) and listens on the same port beside the first process; the kernel
 * spreads the connections. Grants (secrets, operations) are in the shared grant store. Only the
 * first process runs the scheduler and the garbage collector.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Config } from './config.ts';
import type { Logger, Threshold } from './log.ts';

export interface ReplicaJob {
  config: Config;
  ports: { https: number; http: number | undefined };
  /** Session ticket keys, shared so that any process resumes a session another one started. */
  ticketKeys: string;
  logLevel: Threshold;
}

export type ReplicaMessage = { ready: true } | { failed: string };

/** The replica's entry module, beside this one (.ts from the sources, .js in the build). */
const entry = new URL(`./replica-main${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

const startTimeoutMs = 30_000;
const respawnDelayMs = 1000;

/** Messages from the first process to the others, besides the job and metrics (gather.ts). */
export type ControlMessage = { type: 'stop'; graceMs: number } | { type: 'log-level'; level: Threshold };

export interface Replicas {
  /** Lets every other process finish its downloads (up to `graceMs`) and waits for it to exit. */
  stop(graceMs?: number): Promise<void>;
  /** The IPC channels to the processes running now. */
  channels(): ChildProcess[];
  send(message: ControlMessage): void;
}

/** `onMessage` sees what the processes send once started (questions for metrics). */
export async function startReplicas(count: number, job: ReplicaJob, log: Logger, onMessage?: (from: ChildProcess, message: unknown) => void): Promise<Replicas> {
  let stopping = false;
  const children = new Set<ChildProcess>();

  const spawnOne = async (): Promise<void> => {
    const child = fork(entry, [], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(child);
    child.once('exit', (code, signal) => {
      children.delete(child);
      if (stopping) return;
      log.error('a serving process stopped; starting another', { pid: child.pid, code, signal });
      setTimeout(() => {
        if (!stopping) spawnOne().catch((err: unknown) => log.error('cannot start a serving process', { err }));
      }, respawnDelayMs).unref();
    });
    child.send(job);
    if (onMessage) child.on('message', (message) => onMessage(child, message));
    const timeout = AbortSignal.timeout(startTimeoutMs);
    const [message] = (await once(child, 'message', { signal: timeout }).catch(() => [{ failed: 'it did not start in time' }])) as [ReplicaMessage];
    if ('failed' in message) {
      child.kill('SIGKILL');
      throw new Error(`a serving process failed to start: ${message.failed}`);
    }
  };

  const stop = async (graceMs = 0) => {
    stopping = true;
    await Promise.all(
      [...children].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.send({ type: 'stop', graceMs } satisfies ControlMessage);
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs + 10_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  };

  try {
    await Promise.all(Array.from({ length: count }, spawnOne));
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    stop,
    channels: () => [...children],
    send: (message) => {
      for (const child of children) if (child.connected) child.send(message);
    },
  };
}
