/**
 * The OCI registry's use cases (issue 27) over the store, knowing nothing of HTTP: blobs read,
 * uploaded (a session is a resumable `BlobWriter`: its id continues in a later request, on any
 * process), mounted from another repository and deleted; manifests pushed, read and deleted.
 * Every blob goes through `commitBlobs`, so collection never takes it between its commit and the
 * repository's hold; a manifest is kept byte-exact as a blob of its own.
 */
import { createHash } from 'node:crypto';
import type { BlobWriter } from '../blob/store.ts';
import type { BlobRef } from '../domain/image.ts';
import { OciError, incusFingerprint, indexPlatforms, maxManifestBytes, readManifest, type Reference } from '../domain/oci.ts';
import type { OciManifest } from '../meta/store.ts';
import { isAppError, ErrorCodes } from '../errors.ts';
import { commitBlobs } from './collect.ts';
import { PipelinedWrites } from './ingest.ts';
import type { Store } from './context.ts';

const blobRef = (sha256: string, size: number): BlobRef => ({ sha256, size, format: { kind: 'oci' } });

/** The blob if the repository holds it (linked, or one of its manifests), with its size. */
export async function repositoryBlob(store: Store, repository: string, sha256: string): Promise<BlobRef | undefined> {
  if (!(await store.meta.ociBlobLinked(repository, sha256))) return undefined;
  const size = await store.blobs.size(sha256);
  return size === undefined ? undefined : blobRef(sha256, size);
}

/** A new upload session: its id, to continue with `resumeUpload`. */
export async function startUpload(store: Store): Promise<string> {
  const writer = await store.blobs.createWriter();
  await writer.suspend();
  return writer.id;
}

async function resume(store: Store, id: string): Promise<BlobWriter> {
  try {
    return await store.blobs.resumeWriter(id);
  } catch (err) {
    if (isAppError(err, ErrorCodes.notFound) || isAppError(err, ErrorCodes.invalidArgument)) throw new OciError('BLOB_UPLOAD_UNKNOWN', 'no such upload (finished, cancelled, or idle too long)');
    throw err;
  }
}

/** Upload `id`'s writer, if the next bytes, said to start at `start`, go where it ends (else RANGE_NOT_SATISFIABLE). */
async function resumeAt(store: Store, id: string, start: number | undefined): Promise<BlobWriter> {
  const writer = await resume(store, id);
  if (start !== undefined && start !== writer.size) {
    await writer.suspend();
    throw new OciError('RANGE_NOT_SATISFIABLE', `this chunk starts at ${start}, the upload holds ${writer.size} bytes`);
  }
  return writer;
}

/** The bytes an upload holds so far. */
export async function uploadSize(store: Store, id: string): Promise<number> {
  const writer = await resume(store, id);
  const size = writer.size;
  await writer.suspend();
  return size;
}

/** As an import writes: hashed on threads, the disk write overlapping the next chunk. */
const writeAll = (writer: BlobWriter, chunks: AsyncIterable<Uint8Array>) => new PipelinedWrites(writer).pushAll(chunks);

/**
 * Appends `chunks` to upload `id`; `start`, when the client said where they go (Content-Range),
 * must be where the upload ends (else `RANGE_NOT_SATISFIABLE`, nothing written). The new size.
 */
export async function appendUpload(store: Store, id: string, chunks: AsyncIterable<Uint8Array>, start?: number): Promise<number> {
  const writer = await resumeAt(store, id, start);
  try {
    await writeAll(writer, chunks);
  } finally {
    await writer.suspend();
  }
  return writer.size;
}

/** Stores the writer's bytes as blob `sha256` (refused, and dropped, when they hash otherwise) held by `repository`. */
async function finish(store: Store, repository: string, writer: BlobWriter, sha256: string): Promise<BlobRef> {
  const got = await writer.digest();
  if (got !== sha256) {
    await writer.abort();
    throw new OciError('DIGEST_INVALID', `the upload's sha256 is ${got}, not ${sha256}`);
  }
  const ref = blobRef(sha256, writer.size);
  await commitBlobs(store, [writer], () => store.meta.linkOciBlob(repository, ref));
  return ref;
}

/**
 * Ends upload `id` with its last `chunks` (a monolithic PUT's whole body; `start` where they go,
 * if the client said, which must be where the upload ends): the blob, held by `repository`.
 */
export async function finishUpload(store: Store, repository: string, id: string, sha256: string, chunks: AsyncIterable<Uint8Array>, start?: number): Promise<BlobRef> {
  const writer = await resumeAt(store, id, start);
  try {
    await writeAll(writer, chunks);
  } catch (err) {
    await writer.suspend();
    throw err;
  }
  return finish(store, repository, writer, sha256);
}

/** A blob pushed in one request (`POST ...?digest=`). */
export async function uploadWhole(store: Store, repository: string, sha256: string, chunks: AsyncIterable<Uint8Array>): Promise<BlobRef> {
  const writer = await store.blobs.createWriter();
  try {
    await writeAll(writer, chunks);
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return finish(store, repository, writer, sha256);
}

export async function cancelUpload(store: Store, id: string): Promise<void> {
  await (await resume(store, id)).abort();
}

/** Links a blob `from` holds into `to` (a cross-repository mount): undefined when `from` does not hold it. */
export async function mountBlob(store: Store, to: string, from: string, sha256: string): Promise<BlobRef | undefined> {
  const held = await repositoryBlob(store, from, sha256);
  if (!held) return undefined;
  await commitBlobs(store, [], () => store.meta.linkOciBlob(to, held), [sha256]);
  return held;
}

/**
 * Pushes a manifest: `bytes` as they came (at most `maxManifestBytes`), `contentType` its media
 * type; under a tag, or a digest it must hash to. Every blob it names must be in the repository.
 */
export async function pushManifest(store: Store, repository: string, reference: Reference, bytes: Buffer, contentType: string | undefined): Promise<OciManifest> {
  if (bytes.length > maxManifestBytes) throw new OciError('MANIFEST_INVALID', `the manifest is larger than ${maxManifestBytes} bytes`);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if ('sha256' in reference && reference.sha256 !== sha256) throw new OciError('DIGEST_INVALID', `the manifest's sha256 is ${sha256}, not ${reference.sha256}`);
  const manifest: OciManifest = { repository, sha256, size: bytes.length, ...readManifest(bytes, contentType), createdAt: new Date().toISOString() };
  await keepManifest(store, manifest, bytes, 'tag' in reference ? reference.tag : undefined);
  return manifest;
}

/** Stores a manifest's bytes as a blob and records it (under `tag`; `cached`: a pull-through copy), collection kept off meanwhile. */
export async function keepManifest(store: Store, manifest: OciManifest, bytes: Buffer, tag: string | undefined, options: { cached?: boolean } = {}): Promise<void> {
  const writer = await store.blobs.createWriter();
  try {
    await writer.write(bytes);
  } catch (err) {
    await writer.abort();
    throw err;
  }
  await commitBlobs(store, [writer], () => store.meta.putOciManifest(manifest, blobRef(manifest.sha256, bytes.length), tag, options));
}

/** The manifest a reference names in the repository, or OciError MANIFEST_UNKNOWN. */
export async function manifestOf(store: Store, repository: string, reference: Reference): Promise<OciManifest> {
  const manifest = await store.meta.getOciManifest(repository, reference);
  if (!manifest) throw new OciError('MANIFEST_UNKNOWN', `manifest ${'tag' in reference ? reference.tag : `sha256:${reference.sha256}`} is not in ${repository}`);
  return manifest;
}

/** A tag as the catalogue lists it: its manifest, and what Incus would call it. */
export interface CatalogueTag {
  tag: string;
  digest: string;
  mediaType: string;
  /** An image manifest's Incus fingerprint; an index's per platform (os/architecture). */
  fingerprint?: string;
  platforms?: { platform: string; digest: string; fingerprint: string | null }[];
}

/** Every repository `shown` (the public ones) with its tags, for the catalogue (`/catalogue/v1/registry.json`). */
export async function registryCatalogue(store: Store, shown: (repository: string) => boolean): Promise<{ repositories: { name: string; tags: CatalogueTag[] }[] }> {
  const repositories = [];
  for (const name of (await store.meta.ociRepositories()).filter(shown)) {
    const tags: CatalogueTag[] = [];
    for (const { tag, sha256 } of await store.meta.ociTagTargets(name)) {
      const manifest = await store.meta.getOciManifest(name, { sha256 });
      if (!manifest) continue;
      const entry: CatalogueTag = { tag, digest: `sha256:${sha256}`, mediaType: manifest.mediaType };
      if (manifest.manifests.length) {
        const platforms = indexPlatforms(await storedManifestBytes(store, manifest));
        entry.platforms = await Promise.all(
          manifest.manifests.map(async (child) => {
            const record = await store.meta.getOciManifest(name, { sha256: child });
            return { platform: platforms.get(child) ?? 'unknown', digest: `sha256:${child}`, fingerprint: record ? incusFingerprint(record.blobs.slice(1)) : null };
          }),
        );
      } else {
        entry.fingerprint = incusFingerprint(manifest.blobs.slice(1));
      }
      tags.push(entry);
    }
    repositories.push({ name, tags });
  }
  return { repositories };
}

/** A manifest's bytes as stored (at most 4 MiB, as every manifest kept). */
export async function storedManifestBytes(store: Store, manifest: Pick<OciManifest, 'sha256' | 'size'>): Promise<Buffer> {
  if (manifest.size > maxManifestBytes) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const chunk of (await store.blobs.openRead(manifest.sha256)) as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}
