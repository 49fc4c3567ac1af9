/**
 * Blobs in memory, with the contract of store.ts: for fast unit tests, and as the second driver
 * that shows the contract does not depend on files. Not persistent; staging is the writer's own
 * buffer, which `cleanStaging` drops once the writer has been idle too long (as fs.ts does with a
 * staging file), after which the writer fails.
 */
import { createHash, type Hash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { AppError, ErrorCodes, notFound } from '../errors.ts';
import { isSha256 } from '../domain/fingerprint.ts';
import { outlet } from '../transfer/write-out.ts';
import type { BlobInfo, BlobStore, BlobWriter, ByteRange, OpenedBlob, StoredBlob } from './store.ts';

interface Stored {
  bytes: Buffer;
  modifiedMs: number;
}

/** The size of the pieces reads and copies hand out, so a consumer sees a stream, not one buffer. */
const pieceSize = 256 * 1024;

export class MemoryBlobStore implements BlobStore {
  private readonly blobs = new Map<string, Stored>();
  private readonly writers = new Set<MemoryBlobWriter>();

  private name(sha256: string): string {
    if (!isSha256(sha256)) throw new AppError(ErrorCodes.invalidArgument, `not a sha256: ${sha256}`);
    return sha256;
  }

  private bytesOf(sha256: string, range?: ByteRange): Buffer {
    const stored = this.blobs.get(this.name(sha256));
    if (!stored) throw notFound(`blob ${sha256} is missing from the store`);
    return range ? stored.bytes.subarray(range.start, range.end + 1) : stored.bytes;
  }

  async createWriter(): Promise<BlobWriter> {
    const writer = new MemoryBlobWriter((sha, bytes) => this.put(sha, bytes), () => this.writers.delete(writer));
    this.writers.add(writer);
    return writer;
  }

  /** As fs.ts: the bytes just verified replace whatever was stored under that name, fresh. */
  private put(sha256: string, bytes: Buffer) {
    this.blobs.set(sha256, { bytes, modifiedMs: Date.now() });
  }

  async size(sha256: string): Promise<number | undefined> {
    return this.blobs.get(this.name(sha256))?.bytes.length;
  }

  async openRead(sha256: string, range?: ByteRange): Promise<Readable> {
    const bytes = this.bytesOf(sha256, range);
    return Readable.from(pieces(bytes), { objectMode: false });
  }

  async openCopy(sha256: string, range?: ByteRange): Promise<OpenedBlob> {
    const bytes = this.bytesOf(sha256, range);
    let closed = false;
    return {
      close: async () => {
        closed = true;
      },
      copyTo: async (out: Writable) => {
        if (closed) throw new Error('the blob was closed');
        closed = true;
        const to = outlet(out);
        try {
          for (const piece of pieces(bytes)) await to.write(piece);
        } finally {
          to.release();
        }
      },
    };
  }

  async touch(sha256: string, when: Date): Promise<void> {
    const stored = this.blobs.get(this.name(sha256));
    if (!stored) throw notFound(`blob ${sha256} is missing from the store`);
    stored.modifiedMs = when.getTime();
  }

  async delete(sha256: string): Promise<void> {
    this.blobs.delete(this.name(sha256));
  }

  async *list(): AsyncIterable<StoredBlob> {
    for (const [sha256, stored] of [...this.blobs]) yield { sha256, size: stored.bytes.length, modifiedMs: stored.modifiedMs };
  }

  async cleanStaging(idleMs = 10 * 60_000): Promise<void> {
    for (const writer of [...this.writers]) if (Date.now() - writer.lastActivity > idleMs) writer.drop();
  }
}

function* pieces(bytes: Buffer): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += pieceSize) yield bytes.subarray(at, at + pieceSize);
}

class MemoryBlobWriter implements BlobWriter {
  size = 0;
  lastActivity = Date.now();
  private chunks: Buffer[] = [];
  private readonly hash: Hash = createHash('sha256');
  private sha256: string | undefined;
  private dropped = false;
  private done = false;
  private readonly store: (sha256: string, bytes: Buffer) => void;
  private readonly forget: () => void;

  constructor(store: (sha256: string, bytes: Buffer) => void, forget: () => void) {
    this.store = store;
    this.forget = forget;
  }

  private live() {
    if (this.dropped) throw new Error('the staged bytes were cleaned up');
    if (this.done) throw new Error('the writer was committed or aborted');
    this.lastActivity = Date.now();
  }

  private bytes(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  async digest(): Promise<string> {
    this.sha256 ??= this.hash.digest('hex');
    return this.sha256;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.sha256 !== undefined) throw new Error('write after digest');
    this.live();
    this.hash.update(chunk);
    this.size += chunk.byteLength;
    // A copy: the caller may reuse its buffer.
    this.chunks.push(Buffer.from(chunk));
  }

  async readAt(position: number, length: number): Promise<Uint8Array> {
    if (position < 0 || position + length > this.size) throw new RangeError(`cannot read ${length} bytes at ${position} of ${this.size}`);
    this.live();
    return Buffer.from(this.bytes().subarray(position, position + length));
  }

  async withLocalFile<T>(use: (path: string) => Promise<T>): Promise<T> {
    this.live();
    const dir = await mkdtemp(join(tmpdir(), 'wharf-blob-'));
    try {
      const path = join(dir, 'staged');
      await writeFile(path, this.bytes());
      return await use(path);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async commit(expectedSha256?: string): Promise<BlobInfo> {
    const sha256 = await this.digest();
    try {
      this.live();
      if (expectedSha256 !== undefined && expectedSha256 !== sha256) {
        throw new AppError(ErrorCodes.integrity, `sha256 mismatch: got ${sha256}, expected ${expectedSha256}`);
      }
      this.store(sha256, this.bytes());
      return { sha256, size: this.size };
    } finally {
      await this.abort();
    }
  }

  async abort(): Promise<void> {
    this.done = true;
    this.chunks = [];
    this.forget();
  }

  /** Staging cleaned under the writer's feet: it can no longer commit. */
  drop() {
    this.dropped = true;
    this.chunks = [];
    this.forget();
  }
}
