/**
 * The blob driver on an S3-compatible object store (AWS SDK v3): AWS S3, Ceph RGW, OpenStack
 * Swift, MinIO, Garage. Configured the standard AWS way (AWS_ENDPOINT_URL_S3, AWS_REGION, the
 * credentials chain); the bucket is made if missing.
 *
 * An upload is objects of its own: `uploads/<id>/started` and one object per part
 * (`uploads/<id>/part-00001`...), written as the bytes arrive, so that any process on any host can
 * read it back (`readAt`), go on with it (`resumeUpload`), and see when it was last written
 * (`cleanUploads`). Publishing moves no byte: it writes the blob's manifest, `sha256/<sha256>`
 * (its size and parts), and the parts become the blob's; a read streams them in order. Copying
 * the parts into one object (even server side) would cost the engine the whole upload again.
 * Nothing is readable under a blob's name before its manifest is written whole. A deleted
 * blob's parts stay until `cleanUploads` finds them idle: a download in progress reads to the end.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { AppError, ErrorCodes } from '../errors.ts';
import { outlet } from '../transfer/write-out.ts';
import { BlobDriverError, type BlobDriver, type UploadDriver } from './driver.ts';
import type { ByteRange, OpenedBlob } from './store.ts';
import type { S3Location } from './s3-location.ts';

/** Bytes per part object: above S3's 5 MiB minimum for every part but the last. */
export const partSize = 8 * 1024 * 1024;
/** S3's smallest part other than the last: a smaller last part is taken back on resume. */
const minimumPart = 5 * 1024 * 1024;
/** The most parts one S3 object can be made of (`consolidate` leaves bigger blobs in pieces). */
const maximumParts = 10_000;
/** Server-side part copies in flight at once while a blob is consolidated. */
const copiesInFlight = 4;

const status = (err: unknown) => (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
const errorName = (err: unknown) => (err as { name?: string }).name ?? '';
const isMissing = (err: unknown) => status(err) === 404 || ['NoSuchKey', 'NotFound', 'NoSuchUpload'].includes(errorName(err));

/** The store's failures as the driver contract's kinds, or `unavailable` when it cannot be reached. */
function driverError(err: unknown, what: string): unknown {
  if (err instanceof BlobDriverError || err instanceof AppError) return err;
  if (isMissing(err)) return new BlobDriverError('missing', `${what}: not found`, { cause: err });
  if (['QuotaExceeded', 'EntityTooLarge'].includes(errorName(err)) || status(err) === 507) return new BlobDriverError('full', `${what}: ${(err as Error).message}`, { cause: err });
  if (status(err) === undefined || (status(err) ?? 0) >= 500) {
    return new AppError(ErrorCodes.unavailable, `The blob store cannot be reached (${what}): ${(err as Error).message}`, { cause: err });
  }
  return err;
}

export class S3BlobDriver implements BlobDriver {
  private readonly s3: S3Client;
  /** Signs the URLs handed to clients: for the endpoint they reach, which may not be wharf's. */
  private readonly presigner: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  /** `redirectEndpoint`: where clients reach the store, when not where wharf does (AWS_ENDPOINT_URL_S3). */
  constructor(location: S3Location, options: { pathStyle?: boolean; redirectEndpoint?: string } = {}) {
    this.bucket = location.bucket;
    this.prefix = location.prefix;
    const client = (endpoint?: string) =>
      new S3Client({
        forcePathStyle: options.pathStyle ?? false,
        ...(endpoint ? { endpoint } : {}),
        // Plain requests: additional checksums add aws-chunked encoding that some engines
        // (OpenStack Swift) refuse, and wharf checks every byte by its sha256 itself.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
    this.s3 = client();
    this.presigner = options.redirectEndpoint ? client(options.redirectEndpoint) : this.s3;
  }

  private blobKey = (name: string) => `${this.prefix}sha256/${name}`;
  private uploadKey = (id: string, what: string) => `${this.prefix}uploads/${id}/${what}`;
  private markerKey = (id: string) => this.uploadKey(id, 'started');

  /** Makes the bucket if it is not there. */
  async init(): Promise<void> {
    try {
      await this.s3.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (!isMissing(err)) throw driverError(err, `bucket ${this.bucket}`);
      await this.s3.send(new CreateBucketCommand({ Bucket: this.bucket })).catch((created: unknown) => {
        // Made meanwhile by another replica: what was wanted.
        if (!['BucketAlreadyOwnedByYou', 'BucketAlreadyExists'].includes(errorName(created))) throw driverError(created, `bucket ${this.bucket}`);
      });
    }
  }

  async startUpload(): Promise<UploadDriver> {
    const id = randomUUID();
    await this.put(this.markerKey(id), Buffer.alloc(0));
    return new S3Upload(this, id, [], Buffer.alloc(0));
  }

  async resumeUpload(id: string): Promise<UploadDriver> {
    if (!/^[0-9a-f-]{36}$/.test(id)) throw new BlobDriverError('missing', `no upload ${id}`);
    // Only an upload in progress: a published one's marker is gone (or says so).
    const marker = await this.getBytes(this.markerKey(id)).catch((err: unknown) => {
      throw err instanceof BlobDriverError ? new BlobDriverError('missing', `no upload ${id}`) : err;
    });
    if (marker.length) throw new BlobDriverError('missing', `upload ${id} was published`);
    const parts = (await this.listAll(this.uploadKey(id, 'part-')))
      .sort((a, b) => (a.key < b.key ? -1 : 1))
      .map((o) => ({ key: o.key, size: o.size }));
    // A last part smaller than S3 takes (left by `suspend`) is taken back: more bytes follow it.
    let pending: Buffer = Buffer.alloc(0);
    const last = parts.at(-1);
    if (last && last.size < minimumPart) {
      pending = await this.getBytes(last.key);
      parts.pop();
      await this.deleteKey(last.key);
    }
    return new S3Upload(this, id, parts, pending);
  }

  /** The manifest of blob `name`: its size and the parts that hold it, in order; undefined when there is none. */
  private async manifest(name: string): Promise<Manifest | undefined> {
    let bytes: Buffer;
    try {
      bytes = await this.getBytes(this.blobKey(name));
    } catch (err) {
      if (err instanceof BlobDriverError && err.kind === 'missing') return undefined;
      throw err;
    }
    return JSON.parse(bytes.toString('utf8')) as Manifest;
  }

  async stat(name: string): Promise<number | undefined> {
    return (await this.manifest(name))?.size;
  }

  async read(name: string, range?: ByteRange): Promise<Readable> {
    const manifest = await this.manifest(name);
    if (!manifest) throw new BlobDriverError('missing', `no blob ${name}`);
    return Readable.from(this.pieces(manifest, range ?? { start: 0, end: manifest.size - 1 }), { objectMode: false });
  }

  /** The bytes of `range` of a blob, part after part, each part a ranged GET when it is needed. */
  private async *pieces(manifest: Manifest, range: ByteRange): AsyncGenerator<Buffer> {
    let at = 0;
    for (const part of manifest.parts) {
      const from = Math.max(range.start, at);
      const to = Math.min(range.end, at + part.size - 1);
      if (from <= to) {
        const body = await this.getStream(part.key, { start: from - at, end: to - at });
        for await (const chunk of body) yield chunk as Buffer;
      }
      at += part.size;
      if (at > range.end) return;
    }
  }

  async copy(name: string, range?: ByteRange): Promise<OpenedBlob> {
    // Opened now, so a missing blob fails before any header is sent.
    const body = await this.read(name, range);
    return {
      close: async () => void body.destroy(),
      copyTo: async (out: Writable) => {
        const to = outlet(out);
        try {
          for await (const chunk of body) await to.write(chunk as Buffer);
        } finally {
          to.release();
          body.destroy();
        }
      },
    };
  }

  async delete(name: string): Promise<void> {
    const manifest = await this.manifest(name);
    if (!manifest) return;
    await this.deleteKey(this.blobKey(name));
    await this.retire(manifest.upload);
  }

  /**
   * The parts of a blob no longer named: left to `cleanUploads` (they become an idle upload), so
   * that a download that opened the blob before still reads them to the end, as a file opened
   * before it was deleted does.
   */
  private async retire(id: string): Promise<void> {
    await this.put(this.markerKey(id), Buffer.from('retired'));
  }

  async *list(): AsyncIterable<{ name: string; size: number }> {
    const prefix = `${this.prefix}sha256/`;
    for (const object of await this.listAll(prefix)) {
      const name = object.key.slice(prefix.length);
      const manifest = await this.manifest(name);
      if (manifest) yield { name, size: manifest.size };
    }
  }

  async close(): Promise<void> {
    this.s3.destroy();
    this.presigner.destroy();
  }

  async redirectUrl(name: string, ttlSeconds: number): Promise<string | undefined> {
    const manifest = await this.manifest(name);
    const [whole, ...more] = manifest?.parts ?? [];
    if (!whole || more.length) return undefined;
    // Signing is local (SigV4 query authentication): no request to the store.
    return getSignedUrl(this.presigner, new GetObjectCommand({ Bucket: this.bucket, Key: whole.key }), { expiresIn: ttlSeconds });
  }

  /**
   * A blob's parts copied, server side, into one object (a multipart upload of part copies: the
   * engine copies, or on AWS merely links, the bytes), which becomes the blob's one part: a new
   * upload of its own, published as any other, so the old parts are retired and readers that
   * had them read to the end. A blob deleted or replaced meanwhile is left as it now is.
   */
  async consolidate(name: string): Promise<boolean> {
    const manifest = await this.manifest(name);
    if (!manifest || manifest.parts.length <= 1 || manifest.parts.length > maximumParts) return false;
    const id = randomUUID();
    const key = this.uploadKey(id, 'whole');
    await this.put(this.markerKey(id), Buffer.alloc(0));
    let uploadId: string | undefined;
    try {
      uploadId = (await this.s3.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }))).UploadId!;
      const etags: string[] = [];
      let next = 0;
      const copier = async () => {
        for (let index = next++; index < manifest.parts.length; index = next++) {
          const copied = await this.s3.send(
            new UploadPartCopyCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: index + 1, CopySource: this.copySource(manifest.parts[index]!.key) }),
          );
          etags[index] = copied.CopyPartResult!.ETag!;
          // A long copy is not an idle upload (cleanUploads goes by the last write).
          if (index % 64 === 63) await this.put(this.markerKey(id), Buffer.alloc(0));
        }
      };
      await Promise.all(Array.from({ length: copiesInFlight }, copier));
      await this.s3.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }),
      );
      uploadId = undefined;
      const made = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      if (made.ContentLength !== manifest.size) throw new Error(`the consolidated ${key} holds ${made.ContentLength} bytes, not ${manifest.size}`);
      if ((await this.manifest(name))?.upload !== manifest.upload) {
        await this.dropUpload(id);
        return false;
      }
      await this.publishUpload(name, id, [{ key, size: manifest.size }]);
      return true;
    } catch (err) {
      if (uploadId) await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })).catch(() => {});
      await this.dropUpload(id).catch(() => {});
      throw driverError(err, key);
    }
  }

  /** `x-amz-copy-source`: the bucket and the key, URL-encoded but for its slashes. */
  private copySource(key: string): string {
    return `${this.bucket}/${encodeURIComponent(key).replaceAll('%2F', '/')}`;
  }

  /** Whether upload `id` is still in progress (not cleaned up as a dead writer's). */
  async uploadExists(id: string): Promise<boolean> {
    try {
      return (await this.getBytes(this.markerKey(id))).length === 0;
    } catch (err) {
      if (err instanceof BlobDriverError && err.kind === 'missing') return false;
      throw err;
    }
  }

  async cleanUploads(idleMs: number): Promise<void> {
    const before = Date.now() - idleMs;
    const uploads = Map.groupBy(await this.listAll(`${this.prefix}uploads/`), (o) => this.uploadOf(o.key));
    const live = new Set<string>();
    for (const [id, objects] of uploads) {
      // No marker: a published blob's parts, which only its delete removes.
      const marker = objects.find((o) => o.key === this.markerKey(id));
      if (marker && Math.max(...objects.map((o) => o.modified)) >= before) live.add(id);
      if (!marker || live.has(id)) continue;
      const said = (await this.getBytes(marker.key).catch(() => Buffer.alloc(0))).toString('utf8');
      // A publish that died between writing the manifest and removing the marker: if the
      // manifest is its, the parts are the blob's; only the marker goes.
      const publishedAs = /^published:([0-9a-f]{64})$/.exec(said)?.[1];
      if (publishedAs && (await this.manifest(publishedAs))?.upload === id) await this.deleteKey(marker.key);
      else await this.dropUpload(id);
    }
    await this.abortMultipartUploads(before, live);
  }

  /** The id of the upload `key` (an object under uploads/) belongs to. */
  private uploadOf = (key: string) => key.slice(`${this.prefix}uploads/`.length).split('/')[0]!;

  /**
   * S3 multipart uploads (a consolidation's) begun before `before` and never completed, but for
   * those of a `live` upload (its writer still touches its marker): their writer died.
   */
  private async abortMultipartUploads(before: number, live: Set<string>): Promise<void> {
    const stale: { Key: string; UploadId: string }[] = [];
    let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
    for (;;) {
      const page = await this.s3.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: `${this.prefix}uploads/`, ...markers })).catch((err: unknown) => {
        throw driverError(err, 'multipart uploads');
      });
      for (const u of page.Uploads ?? []) if (u.Key && u.UploadId && (u.Initiated?.getTime() ?? 0) < before && !live.has(this.uploadOf(u.Key))) stale.push({ Key: u.Key, UploadId: u.UploadId });
      if (!page.IsTruncated) break;
      markers = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
    }
    for (const u of stale) {
      await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, ...u })).catch((err: unknown) => {
        if (!isMissing(err)) throw driverError(err, u.Key);
      });
    }
  }

  // What uploads use.

  async put(key: string, body: Buffer): Promise<void> {
    try {
      await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length }));
    } catch (err) {
      throw driverError(err, key);
    }
  }

  async getStream(key: string, range?: ByteRange): Promise<Readable> {
    if (range && range.end < range.start) return Readable.from([]);
    try {
      const answer = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }));
      return answer.Body as Readable;
    } catch (err) {
      throw driverError(err, key);
    }
  }

  async getBytes(key: string, range?: ByteRange): Promise<Buffer> {
    return Buffer.concat(await (await this.getStream(key, range)).toArray());
  }

  async deleteKey(key: string): Promise<void> {
    try {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (!isMissing(err)) throw driverError(err, key);
    }
  }

  async listAll(prefix: string): Promise<{ key: string; size: number; modified: number }[]> {
    const found: { key: string; size: number; modified: number }[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) })).catch((err: unknown) => {
        throw driverError(err, prefix);
      });
      for (const o of page.Contents ?? []) found.push({ key: o.Key!, size: o.Size ?? 0, modified: o.LastModified?.getTime() ?? 0 });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return found;
  }

  /**
   * Makes upload `id`'s parts the blob `name`: its manifest written whole, then the upload's
   * marker removed. A blob stored before under that name (the same bytes, unless they were
   * damaged) is replaced, and its parts removed.
   */
  async publishUpload(name: string, id: string, parts: { key: string; size: number }[]): Promise<void> {
    const before = await this.manifest(name);
    await this.put(this.markerKey(id), Buffer.from(`published:${name}`));
    const manifest: Manifest = { size: parts.reduce((n, p) => n + p.size, 0), upload: id, parts };
    await this.put(this.blobKey(name), Buffer.from(JSON.stringify(manifest)));
    await this.deleteKey(this.markerKey(id));
    if (before && before.upload !== id) await this.retire(before.upload).catch(() => {});
  }

  partKey(id: string, index: number): string {
    return this.uploadKey(id, `part-${String(index).padStart(5, '0')}`);
  }

  async dropUpload(id: string): Promise<void> {
    for (const object of await this.listAll(this.uploadKey(id, ''))) await this.deleteKey(object.key);
  }
}

/** A blob's manifest (`sha256/<sha256>`): the upload whose parts hold it, and those parts in order. */
interface Manifest {
  size: number;
  upload: string;
  parts: { key: string; size: number }[];
}

/**
 * An upload: whole parts stored as objects as the bytes arrive (one in flight while the next
 * fills), the rest in memory until the next part, `suspend` or `publish`.
 */
class S3Upload implements UploadDriver {
  readonly id: string;
  private readonly driver: S3BlobDriver;
  private readonly parts: { key: string; size: number }[];
  private pending: Buffer[];
  private pendingBytes: number;
  private storing: Promise<void> = Promise.resolve();
  private failure: unknown;
  private done = false;
  size: number;

  constructor(driver: S3BlobDriver, id: string, parts: { key: string; size: number }[], pending: Buffer) {
    this.driver = driver;
    this.id = id;
    this.parts = parts;
    this.pending = pending.length ? [pending] : [];
    this.pendingBytes = pending.length;
    this.size = parts.reduce((n, p) => n + p.size, 0) + pending.length;
  }

  private live() {
    if (this.done) throw new BlobDriverError('missing', 'the upload was published, aborted or suspended');
    if (this.failure !== undefined) throw this.failure;
  }

  async append(chunk: Uint8Array): Promise<void> {
    this.live();
    this.pending.push(Buffer.from(chunk));
    this.pendingBytes += chunk.byteLength;
    this.size += chunk.byteLength;
    while (this.pendingBytes >= partSize) {
      const all = Buffer.concat(this.pending);
      this.pending = [all.subarray(partSize)];
      this.pendingBytes = all.length - partSize;
      // One part in flight while the next fills: wait for the one before to be stored.
      await this.storing;
      this.live();
      this.storing = this.storePart(all.subarray(0, partSize));
    }
  }

  private storePart(bytes: Buffer): Promise<void> {
    const part = { key: this.driver.partKey(this.id, this.parts.length + 1), size: bytes.length };
    this.parts.push(part);
    return this.driver.put(part.key, bytes).catch((err: unknown) => {
      this.failure ??= err;
    });
  }

  /** Stores what is pending as the last part, and waits for every part to be stored. */
  private async flush(): Promise<void> {
    if (this.pendingBytes > 0) {
      await this.storing;
      this.storing = this.storePart(Buffer.concat(this.pending));
      this.pending = [];
      this.pendingBytes = 0;
    }
    await this.storing;
    if (this.failure !== undefined) throw this.failure;
  }

  async readAt(position: number, length: number): Promise<Uint8Array> {
    await this.storing;
    const out: Buffer[] = [];
    let at = 0;
    let want = length;
    let from = position;
    for (const part of this.parts) {
      if (want === 0) break;
      if (from < at + part.size) {
        const start = from - at;
        const take = Math.min(part.size - start, want);
        out.push(await this.driver.getBytes(part.key, { start, end: start + take - 1 }));
        from += take;
        want -= take;
      }
      at += part.size;
    }
    if (want > 0) {
      const pending = Buffer.concat(this.pending);
      out.push(pending.subarray(from - at, from - at + want));
    }
    return Buffer.concat(out);
  }

  async withLocalFile<T>(use: (path: string) => Promise<T>): Promise<T> {
    // A tool that reads a file gets one: the bytes brought here once, for its duration.
    const dir = await mkdtemp(join(tmpdir(), 'wharf-s3-'));
    try {
      const path = join(dir, 'staged');
      const file = await open(path, 'w');
      try {
        for (let at = 0; at < this.size; at += partSize) await file.write(await this.readAt(at, Math.min(partSize, this.size - at)));
      } finally {
        await file.close();
      }
      return await use(path);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async publish(name: string): Promise<void> {
    this.live();
    await this.flush();
    // Cleaned up meanwhile as a dead writer's: what it held is gone, so nothing is published.
    if (!(await this.driver.uploadExists(this.id))) throw new BlobDriverError('missing', `upload ${this.id} was cleaned up`);
    await this.driver.publishUpload(name, this.id, this.parts);
    this.done = true;
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.storing;
    await this.driver.dropUpload(this.id).catch(() => {});
  }

  async suspend(): Promise<void> {
    if (this.done) return;
    await this.flush();
    this.done = true;
  }
}
