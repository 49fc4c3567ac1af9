/**
 * Blobs in memory, with the driver contract of driver.ts: for fast unit tests, and as the second
 * driver that shows the contract does not depend on files. Not persistent. `share()` gives
 * another store over the same bytes and uploads, as another process over the same storage.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { outlet } from '../transfer/write-out.ts';
import { BlobDriverError, type BlobDriver, type UploadDriver } from './driver.ts';
import { Blobs, type ByteRange, type OpenedBlob } from './store.ts';

/** The size of the pieces reads and copies hand out, so a consumer sees a stream, not one buffer. */
const pieceSize = 256 * 1024;

interface MemoryUploadState {
  chunks: Buffer[];
  size: number;
  lastActivity: number;
}

interface MemoryData {
  blobs: Map<string, Buffer>;
  uploads: Map<string, MemoryUploadState>;
}

export class MemoryBlobDriver implements BlobDriver {
  private readonly data: MemoryData;

  constructor(data: MemoryData = { blobs: new Map(), uploads: new Map() }) {
    this.data = data;
  }

  /** Another driver over the same bytes and uploads. */
  share(): MemoryBlobDriver {
    return new MemoryBlobDriver(this.data);
  }

  private bytesOf(name: string, range?: ByteRange): Buffer {
    const bytes = this.data.blobs.get(name);
    if (!bytes) throw new BlobDriverError('missing', `no blob ${name}`);
    return range ? bytes.subarray(range.start, range.end + 1) : bytes;
  }

  async startUpload(): Promise<UploadDriver> {
    const id = randomUUID();
    this.data.uploads.set(id, { chunks: [], size: 0, lastActivity: Date.now() });
    return new MemoryUpload(id, this.data);
  }

  async resumeUpload(id: string): Promise<UploadDriver> {
    if (!this.data.uploads.has(id)) throw new BlobDriverError('missing', `no upload ${id}`);
    return new MemoryUpload(id, this.data);
  }

  async stat(name: string): Promise<number | undefined> {
    return this.data.blobs.get(name)?.length;
  }

  async read(name: string, range?: ByteRange): Promise<Readable> {
    return Readable.from(pieces(this.bytesOf(name, range)), { objectMode: false });
  }

  async copy(name: string, range?: ByteRange): Promise<OpenedBlob> {
    const bytes = this.bytesOf(name, range);
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

  async delete(name: string): Promise<void> {
    this.data.blobs.delete(name);
  }

  async *list(): AsyncIterable<{ name: string; size: number }> {
    for (const [name, bytes] of [...this.data.blobs]) yield { name, size: bytes.length };
  }

  async cleanUploads(idleMs: number): Promise<void> {
    for (const [id, upload] of [...this.data.uploads]) if (Date.now() - upload.lastActivity > idleMs) this.data.uploads.delete(id);
  }
}

function* pieces(bytes: Buffer): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += pieceSize) yield bytes.subarray(at, at + pieceSize);
}

class MemoryUpload implements UploadDriver {
  readonly id: string;
  private readonly data: MemoryData;
  size: number;

  constructor(id: string, data: MemoryData) {
    this.id = id;
    this.data = data;
    this.size = data.uploads.get(id)?.size ?? 0;
  }

  /** The upload's state; gone once published, aborted or cleaned up (a dead writer's). */
  private state(): MemoryUploadState {
    const state = this.data.uploads.get(this.id);
    if (!state) throw new BlobDriverError('missing', 'the upload was published, aborted or cleaned up');
    state.lastActivity = Date.now();
    return state;
  }

  private bytes(): Buffer {
    const state = this.state();
    if (state.chunks.length > 1) state.chunks = [Buffer.concat(state.chunks)];
    return state.chunks[0] ?? Buffer.alloc(0);
  }

  async append(chunk: Uint8Array): Promise<void> {
    const state = this.state();
    // A copy: the caller may reuse its buffer.
    state.chunks.push(Buffer.from(chunk));
    state.size += chunk.byteLength;
    this.size = state.size;
  }

  async readAt(position: number, length: number): Promise<Uint8Array> {
    return Buffer.from(this.bytes().subarray(position, position + length));
  }

  async withLocalFile<T>(use: (path: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-blob-'));
    try {
      const path = join(dir, 'staged');
      await writeFile(path, this.bytes());
      return await use(path);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async publish(name: string): Promise<void> {
    this.data.blobs.set(name, this.bytes());
    this.data.uploads.delete(this.id);
  }

  async abort(): Promise<void> {
    this.data.uploads.delete(this.id);
  }

  async suspend(): Promise<void> {}
}

/** The blob store in memory (store.ts `Blobs` over the memory driver). */
export class MemoryBlobStore extends Blobs {
  private readonly memory: MemoryBlobDriver;

  constructor(driver = new MemoryBlobDriver()) {
    // Hashed on this thread: its tests write many small chunks, for which a message to a hash
    // thread costs more than the hashing.
    super(driver, { hashing: 'inline' });
    this.memory = driver;
  }

  /** Another store over the same bytes, as another process would have. */
  share(): MemoryBlobStore {
    return new MemoryBlobStore(this.memory.share());
  }
}
