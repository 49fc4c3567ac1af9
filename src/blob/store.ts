/**
 * Content-addressed bytes. Every blob is named by its sha256, computed once while it is written;
 * nothing is visible under that name until commit() has made it durable.
 */
import type { Readable, Writable } from 'node:stream';

export interface BlobInfo {
  sha256: string;
  size: number;
}

export interface StoredBlob extends BlobInfo {
  modifiedMs: number;
}

/**
 * A blob being written. It is a stream to its user: bytes go in, are hashed once on the way, and
 * can be read back; where they are kept is the driver's business.
 */
export interface BlobWriter {
  readonly size: number;
  /** The writer may still read `chunk` after this resolves (to hash it): do not change it. */
  write(chunk: Uint8Array): Promise<void>;
  /** Reads back bytes already written (format checks that look at tables, such as an xz index). */
  readAt(position: number, length: number): Promise<Uint8Array>;
  /**
   * Lends a local file holding the bytes written so far to `use`, for a tool that needs one
   * (qemu-img): only for the duration of the call. A remote driver would spool a copy.
   */
  withLocalFile<T>(use: (path: string) => Promise<T>): Promise<T>;
  /** The sha256 of everything written (computed as it was written); no more writes after this. */
  digest(): Promise<string>;
  /**
   * Makes the blob durable under its sha256; fails (and aborts) if it is not `expectedSha256`.
   * A blob already stored under that name is replaced, atomically (readers that opened it keep
   * their bytes): it should hold the same bytes, but this is how one damaged in storage is
   * repaired. The blob counts as used now (`modifiedMs`), so the sweep of old files leaves it be.
   */
  commit(expectedSha256?: string): Promise<BlobInfo>;
  /** Forgets everything written; safe to call after commit or twice. */
  abort(): Promise<void>;
}

export interface OpenedBlob {
  /** Writes the blob, or the range, to `out`, then releases it (also when the copy fails). */
  copyTo(out: Writable): Promise<void>;
  /** Releases it without copying; harmless after copyTo. */
  close(): Promise<void>;
}

export interface ByteRange {
  /** Inclusive, as in HTTP. */
  start: number;
  end: number;
}

export interface BlobStore {
  createWriter(): Promise<BlobWriter>;
  size(sha256: string): Promise<number | undefined>;
  openRead(sha256: string, range?: ByteRange): Promise<Readable>;
  /**
   * Opens the blob (failing before any byte is sent if it is missing) for the serving path, which
   * may reuse its buffers. The opened blob holds a resource until it was copied or closed.
   */
  openCopy(sha256: string, range?: ByteRange): Promise<OpenedBlob>;
  delete(sha256: string): Promise<void>;
  /**
   * Marks the blob as used at `when` (its `modifiedMs` in `list()`), for caches that evict the
   * least recently used; `not_found` when it is missing.
   */
  touch(sha256: string, when: Date): Promise<void>;
  list(): AsyncIterable<StoredBlob>;
  /** Removes staging files left by a crash (those idle for longer than `idleMs`). */
  cleanStaging(idleMs?: number): Promise<void>;
}
