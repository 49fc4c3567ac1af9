/**
 * sha256 computed on other threads, so that the thread moving the bytes never hashes them. An
 * import computes two hashes of the same bytes (each file's own, and the image fingerprint over
 * both files of a split image): each hash goes to the least busy of up to one thread per core, so
 * both run at once and the main thread only reads, copies and writes.
 *
 * A chunk is shared, not copied per hash: `shareChunk` copies it once into shared memory
 * (memcpy is ~10x faster than hashing) and every hash fed that view reads the same bytes. At
 * most a few MiB are in flight per hash, so memory stays flat whatever the file size.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { AppError, ErrorCodes } from '../errors.ts';

const inFlightLimit = 8 * 1024 * 1024;
const threadLimit = Math.max(1, Math.min(2, availableParallelism()));

interface Pending {
  thread: HashThread;
  inFlight: number;
  wakeUp: (() => void) | undefined;
  done: ((digest: string) => void) | undefined;
  /** Set when the thread died: every later call fails with it instead of waiting forever. */
  failure: Error | undefined;
  fail: ((err: Error) => void) | undefined;
  /** The pooled blocks of the chunks sent and not yet acknowledged, in order. */
  blocks: (Block | undefined)[];
}

interface HashThread {
  worker: Worker | undefined;
  /** Hashes under way on it. */
  hashes: number;
}

/**
 * The thread's module, beside this one: hash-thread.ts when running from the sources,
 * hash-thread.js in the compiled build (dist/). The compiler rewrites the extensions of
 * imports, not of URLs.
 */
const threadModule = new URL(`./hash-thread${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

const threads: HashThread[] = [];
let nextId = 0;
const pending = new Map<number, Pending>();

function start(thread: HashThread): Worker {
  if (thread.worker) return thread.worker;
  const worker = new Worker(threadModule);
  thread.worker = worker;
  worker.on('message', (m: { id: number; ack?: number; digest?: string; dropped?: true }) => {
    const p = pending.get(m.id);
    if (!p) return;
    if (m.ack !== undefined) {
      const block = p.blocks.shift();
      if (block) releaseBlock(block);
      p.inFlight -= m.ack;
      if (p.inFlight <= inFlightLimit) p.wakeUp?.();
    }
    // The last message about a hash: every chunk before it was acknowledged, so its blocks are free.
    if (m.digest !== undefined || m.dropped) pending.delete(m.id);
    if (m.digest !== undefined) p.done?.(m.digest);
  });
  const died = (err: Error) => {
    if (thread.worker !== worker) return;
    thread.worker = undefined;
    for (const [id, p] of pending) {
      if (p.thread !== thread) continue;
      pending.delete(id);
      p.failure ??= new AppError(ErrorCodes.internal, `a hashing thread stopped: ${err.message}`, { cause: err });
      for (const block of p.blocks.splice(0)) if (block) releaseBlock(block);
      p.wakeUp?.();
      p.fail?.(p.failure);
    }
  };
  worker.on('error', died);
  worker.on('exit', (code) => died(new Error(`exit code ${code}`)));
  refWhileBusy(thread);
  return worker;
}

/** The least busy thread; a new one while fewer than one per core exist and all are busy. */
function pick(): HashThread {
  const idle = threads.find((t) => t.hashes === 0);
  if (idle) return idle;
  if (threads.length < threadLimit) {
    const thread: HashThread = { worker: undefined, hashes: 0 };
    threads.push(thread);
    return thread;
  }
  return threads.reduce((a, b) => (b.hashes < a.hashes ? b : a));
}

/** A thread keeps the process alive only while some hash is under way on it. */
function refWhileBusy(thread: HashThread) {
  if (thread.hashes > 0) thread.worker?.ref();
  else thread.worker?.unref();
}

/**
 * Reusable blocks of shared memory, so that sharing a chunk costs a memcpy and nothing else: a
 * fresh SharedArrayBuffer per chunk was measured at 3x the copy (zero-filled, page-faulted pages)
 * and kept hundreds of MiB alive until both threads' collectors ran.
 */
const blockSize = 1 << 20;
const pooledBlocks = 48;
interface Block {
  bytes: Uint8Array;
  /** The chunk's owner and every hash that has yet to read it. */
  users: number;
}
const freeBlocks: Block[] = [];
let blockCount = 0;
const blockOf = new WeakMap<SharedArrayBuffer, Block>();

function releaseBlock(block: Block) {
  if (--block.users === 0) freeBlocks.push(block);
}

/** A chunk in shared memory, for hashes to read in place; `release` once its owner is done with it. */
export interface SharedChunk {
  bytes: Uint8Array;
  release(): void;
}

/** Copies a chunk (at most 1 MiB: split larger ones first) into shared memory. */
export function shareChunk(chunk: Uint8Array): SharedChunk {
  if (chunk.byteLength > blockSize) throw new RangeError(`a shared chunk holds at most ${blockSize} bytes`);
  let block = freeBlocks.pop();
  if (!block && blockCount < pooledBlocks) {
    const buffer = new SharedArrayBuffer(blockSize);
    block = { bytes: new Uint8Array(buffer), users: 0 };
    blockOf.set(buffer, block);
    blockCount++;
  }
  if (!block) {
    // Every pooled block is in use (many imports at once): a block of its own, left to the collector.
    const bytes = new Uint8Array(new SharedArrayBuffer(chunk.byteLength));
    bytes.set(chunk);
    return { bytes, release: () => {} };
  }
  block.users = 1;
  block.bytes.set(chunk);
  const owned = block;
  let released = false;
  return {
    bytes: block.bytes.subarray(0, chunk.byteLength),
    release: () => {
      if (released) return;
      released = true;
      releaseBlock(owned);
    },
  };
}

/** The largest piece shareChunk takes. */
export const sharedChunkLimit = blockSize;

function copyShared(chunk: Uint8Array): Uint8Array {
  const copy = new Uint8Array(new SharedArrayBuffer(chunk.byteLength));
  copy.set(chunk);
  return copy;
}

export class OffThreadHash {
  private readonly id = nextId++;
  private readonly state: Pending;
  private finished = false;

  constructor() {
    const thread = pick();
    thread.hashes++;
    this.state = { thread, inFlight: 0, wakeUp: undefined, done: undefined, failure: undefined, fail: undefined, blocks: [] };
    pending.set(this.id, this.state);
    start(thread).postMessage({ id: this.id, op: 'init' });
    refWhileBusy(thread);
  }

  /**
   * Feeds a chunk. It is read later, on the other thread: the caller must not change it
   * afterwards (a chunk already in shared memory is used as it is; any other is copied).
   */
  async update(chunk: Uint8Array): Promise<void> {
    if (this.state.failure) throw this.state.failure;
    // A pooled block stays in use until the thread has read it; anything else is copied.
    const block = chunk.buffer instanceof SharedArrayBuffer ? blockOf.get(chunk.buffer) : undefined;
    const data = chunk.buffer instanceof SharedArrayBuffer ? chunk : copyShared(chunk);
    if (block) {
      block.users++;
      this.state.blocks.push(block);
    } else {
      this.state.blocks.push(undefined);
    }
    this.state.inFlight += data.byteLength;
    this.worker().postMessage({ id: this.id, op: 'update', data });
    while (this.state.inFlight > inFlightLimit && !this.state.failure) await new Promise<void>((resolve) => (this.state.wakeUp = resolve));
    if (this.state.failure) throw this.state.failure;
  }

  digest(): Promise<string> {
    return new Promise((resolve, reject) => {
      if (this.state.failure) return reject(this.state.failure);
      this.state.done = (digest) => {
        this.release();
        resolve(digest);
      };
      this.state.fail = reject;
      this.worker().postMessage({ id: this.id, op: 'digest' });
    });
  }

  /** Forget it (a failed import). Harmless after digest(). */
  drop(): void {
    if (this.finished) return;
    // The thread answers once it has read every chunk sent before: only then are their blocks free.
    if (this.state.thread.worker) this.state.thread.worker.postMessage({ id: this.id, op: 'drop' });
    else pending.delete(this.id);
    this.release();
  }

  private worker(): Worker {
    const worker = this.state.thread.worker;
    if (!worker) throw (this.state.failure ??= new AppError(ErrorCodes.internal, 'a hashing thread stopped'));
    return worker;
  }

  private release() {
    if (this.finished) return;
    this.finished = true;
    this.state.thread.hashes--;
    refWhileBusy(this.state.thread);
  }
}
