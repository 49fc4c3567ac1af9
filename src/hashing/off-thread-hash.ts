/**
 * A sha256 computed on another thread. A split image needs two hashes of the same bytes (each
 * file's own, and the image fingerprint over both files); running the second on the other core
 * keeps an import close to the cost of one pass. Chunks are copied (memcpy is ~10x faster than
 * hashing) and at most a few MiB are in flight, so memory stays flat whatever the file size.
 */
import { Worker } from 'node:worker_threads';
import { AppError, ErrorCodes } from '../errors.ts';

const inFlightLimit = 8 * 1024 * 1024;

interface Pending {
  inFlight: number;
  wakeUp: (() => void) | undefined;
  done: ((digest: string) => void) | undefined;
  /** Set when the thread died: every later call fails with it instead of waiting forever. */
  failure: Error | undefined;
  fail: ((err: Error) => void) | undefined;
}

/**
 * The thread's module, beside this one: hash-thread.ts when running from the sources,
 * hash-thread.js in the compiled build (dist/). The compiler rewrites the extensions of
 * imports, not of URLs.
 */
const threadModule = new URL(`./hash-thread${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

let worker: Worker | undefined;
let nextId = 0;
const pending = new Map<number, Pending>();

function thread(): Worker {
  if (!worker) {
    worker = new Worker(threadModule);
    worker.on('message', (m: { id: number; ack?: number; digest?: string }) => {
      const p = pending.get(m.id);
      if (!p) return;
      if (m.ack !== undefined) {
        p.inFlight -= m.ack;
        if (p.inFlight <= inFlightLimit) p.wakeUp?.();
      }
      if (m.digest !== undefined) p.done?.(m.digest);
    });
    const died = (err: Error) => {
      worker = undefined;
      for (const p of pending.values()) {
        p.failure ??= new AppError(ErrorCodes.internal, `the hashing thread stopped: ${err.message}`, { cause: err });
        p.wakeUp?.();
        p.fail?.(p.failure);
      }
    };
    worker.on('error', died);
    worker.on('exit', (code) => {
      if (worker !== undefined) died(new Error(`exit code ${code}`));
    });
  }
  return worker;
}

/** Keeps the process alive only while some hash is under way. */
function refWhileBusy() {
  if (pending.size > 0) worker?.ref();
  else worker?.unref();
}

export class OffThreadHash {
  private readonly id = nextId++;
  private readonly state: Pending = { inFlight: 0, wakeUp: undefined, done: undefined, failure: undefined, fail: undefined };

  constructor() {
    pending.set(this.id, this.state);
    refWhileBusy();
    thread().postMessage({ id: this.id, op: 'init' });
  }

  async update(chunk: Uint8Array): Promise<void> {
    if (this.state.failure) throw this.state.failure;
    const copy = new Uint8Array(chunk.byteLength);
    copy.set(chunk);
    this.state.inFlight += copy.byteLength;
    thread().postMessage({ id: this.id, op: 'update', data: copy }, [copy.buffer]);
    while (this.state.inFlight > inFlightLimit && !this.state.failure) await new Promise<void>((resolve) => (this.state.wakeUp = resolve));
    if (this.state.failure) throw this.state.failure;
  }

  digest(): Promise<string> {
    return new Promise((resolve, reject) => {
      if (this.state.failure) return reject(this.state.failure);
      this.state.done = (digest) => {
        pending.delete(this.id);
        refWhileBusy();
        resolve(digest);
      };
      this.state.fail = reject;
      thread().postMessage({ id: this.id, op: 'digest' });
    });
  }

  /** Forget it (a failed import). */
  drop(): void {
    if (!pending.delete(this.id)) return;
    thread().postMessage({ id: this.id, op: 'drop' });
    refWhileBusy();
  }
}
