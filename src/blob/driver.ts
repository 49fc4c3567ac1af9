/**
 * What a blob driver does: move bytes, nothing more. Names, hashing, the expected size and
 * sha256, the errors users see and timing are the wrapper's (store.ts `Blobs`), for every driver
 * alike (distribution's storage/driver/base is the model): a driver stores bytes under the names
 * it is given and hands them back.
 *
 * An upload is bytes on their way in, invisible to readers until `publish` puts them under a
 * name at once and durably. It has an id, so that another request, process or host can go on
 * with it (`resumeUpload`): chunked uploads, and an S3 multipart upload that outlives a request.
 * Nothing here depends on modification times.
 */
import type { Readable } from 'node:stream';
import type { ByteRange, OpenedBlob } from './store.ts';

/**
 * The failures a caller must tell apart, whatever the engine: a name or upload that is not there,
 * and storage that is full. Anything else a driver throws is passed on as it is.
 */
export class BlobDriverError extends Error {
  readonly kind: 'missing' | 'full';
  constructor(kind: 'missing' | 'full', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
  }
}

export interface UploadDriver {
  readonly id: string;
  /** Bytes appended so far. */
  readonly size: number;
  /** Appends `chunk` (which the caller may reuse once this resolves). */
  append(chunk: Uint8Array): Promise<void>;
  /** Bytes appended already, read back (format checks look at tables, such as an xz index). */
  readAt(position: number, length: number): Promise<Uint8Array>;
  /** A local file holding the bytes appended so far, for the duration of `use` (qemu-img). */
  withLocalFile<T>(use: (path: string) => Promise<T>): Promise<T>;
  /**
   * Makes the bytes readable under `name`, durably and at once (readers see all of them or
   * none), replacing whatever was stored under it; the upload is then gone.
   */
  publish(name: string): Promise<void>;
  /** Forgets the bytes; harmless once published, or twice. */
  abort(): Promise<void>;
  /** Lets go of the upload, which stays for `resumeUpload` (this handle can do nothing more). */
  suspend(): Promise<void>;
}

export interface BlobDriver {
  startUpload(): Promise<UploadDriver>;
  /** The upload `id` as it was left (by this process or another); `missing` when there is none. */
  resumeUpload(id: string): Promise<UploadDriver>;
  /** The size stored under `name`, or undefined. */
  stat(name: string): Promise<number | undefined>;
  /** A stream of the bytes (or a range of them); `missing` before any byte when there is none. */
  read(name: string, range?: ByteRange): Promise<Readable>;
  /** As `read`, for the serving path: copied straight to a socket. */
  copy(name: string, range?: ByteRange): Promise<OpenedBlob>;
  /** Removes what is stored under `name`; nothing there is fine. */
  delete(name: string): Promise<void>;
  /** Every stored name with its size. */
  list(): AsyncIterable<{ name: string; size: number }>;
  /** Removes uploads left idle for longer than `idleMs` (their writer died). */
  cleanUploads(idleMs: number): Promise<void>;
  /** Lets go of connections (a networked driver); nothing may be called afterwards. */
  close?(): Promise<void>;
  /** A driver that keeps files on this host: where `name` is, if stored (read only). */
  localPath?(name: string): Promise<string | undefined>;
  /**
   * For a driver that can hand out short-lived URLs (S3 presigned GETs): a URL that reads blob
   * `name` (whole, or a Range asked of it) for `ttlSeconds`, without credentials; undefined when
   * the blob cannot be read from one URL (not `consolidate`d yet). Never checked against the
   * blob's existence on the caller's behalf: the caller knows it is stored.
   */
  redirectUrl?(name: string, ttlSeconds: number): Promise<string | undefined>;
  /**
   * Makes a blob stored in pieces one object, so that `redirectUrl` can name it, moving no byte
   * through wharf (a server-side copy); true when it changed anything. Readers of the pieces
   * read to the end: they are retired as a deleted blob's are.
   */
  consolidate?(name: string): Promise<boolean>;
}
