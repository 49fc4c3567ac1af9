/** The image use cases behind `wharf image ...` (import lives in import.ts). */
import { ensureDirectory } from '../directories.ts';
import { channelSet, checkChannel } from '../domain/channel.ts';
import { createHash, type Hash } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { AppError, ErrorCodes, changedMeanwhile, isAppError } from '../errors.ts';
import { aliasesOf, type Alias, type BlobRef, type Image } from '../domain/image.ts';
import type { Stage } from '../domain/pipeline.ts';
import { formatExtension } from '../domain/formats.ts';
import { matchesProperty } from '../domain/property-filter.ts';
import { toApiImage } from '../domain/lxd-api.ts';
import type { ImageCatalog } from '../meta/store.ts';
import type { Store, StoreWith } from './context.ts';
import { resolveImage } from './resolve.ts';

export interface ImageWithAliases extends Image {
  aliases: Alias[];
}

export async function listImages(store: { meta: ImageCatalog }, filters: string[] = []): Promise<ImageWithAliases[]> {
  const [images, aliases] = await Promise.all([store.meta.listImages(), store.meta.listAliases()]);
  return images
    .map((image) => ({ ...image, aliases: aliasesOf(aliases, image.fingerprint) }))
    .filter((image) => filters.every((f) => matchesFilter(image, f)));
}

/** One image with the hand-made aliases that name it. */
export async function imageWithAliases(store: { meta: ImageCatalog }, image: Image): Promise<ImageWithAliases> {
  return { ...image, aliases: aliasesOf(await store.meta.listAliases(), image.fingerprint) };
}

/**
 * `lxc image list` filters: KEY=VALUE matches a property (or architecture, type, public,
 * fingerprint: domain/property-filter.ts); anything else is a fingerprint prefix or part of an
 * alias name.
 */
export function matchesFilter(image: ImageWithAliases, filter: string): boolean {
  const eq = filter.indexOf('=');
  if (eq >= 0) return matchesProperty(image, filter.slice(0, eq), filter.slice(eq + 1));
  const f = filter.toLowerCase();
  return image.fingerprint.startsWith(f) || image.aliases.some((a) => a.name.toLowerCase().includes(f));
}

export interface ImageEdit {
  public?: boolean;
  properties?: Record<string, string>;
  expiresAt?: string | null;
  autoUpdate?: boolean;
  channels?: string[];
  pinned?: string[];
  /** The publishing pipeline's (pipeline/stage.ts); never from an API client. */
  stage?: Stage | null;
}

/**
 * How changes apply: `replace` (`image edit`, and PUT over the LXD API) gives properties whole,
 * so a property left out of them is removed; `merge` (PATCH) sets the properties it names and
 * keeps the others. In both, a field the changes leave out stays as it is.
 */
export type EditMode = 'replace' | 'merge';

/** Fields of the API view that are shown (so `image edit` sends them back) but never change. */
const fixedFields = ['fingerprint', 'architecture', 'created_at', 'type', 'size', 'filename', 'uploaded_at'] as const;

const invalid = (message: string, hint?: string) => new AppError(ErrorCodes.invalidArgument, message, hint === undefined ? {} : { hint });

/**
 * The rules of an image edit, for `image edit` and PUT/PATCH of /1.0/images/FP alike: `changes`
 * is the image as the LXD API shows it (domain/lxd-api.ts), whole or in part. `public` and
 * `auto_update` are true or false, `properties` a mapping of text (numbers and booleans, as YAML
 * reads them, count as their text; null is none), `expires_at` a date (empty, null or Go's zero
 * time is never), `profiles` a list of names (wharf keeps none: every image shows `default`).
 * Fields that cannot change may be given only with the values they have; any other field (the
 * aliases, last_used_at... that `image show` prints) is ignored.
 */
export function imageEditFrom(image: Image, changes: unknown, mode: EditMode): ImageEdit {
  if (typeof changes !== 'object' || changes === null || Array.isArray(changes)) throw invalid('The image must be a mapping of fields');
  const doc = changes as Record<string, unknown>;
  const shown = toApiImage(image, []);
  for (const key of fixedFields) {
    if (key in doc && String(doc[key]) !== String(shown[key])) throw invalid(`${key} cannot be changed`, 'Editable: properties, public, expires_at, auto_update.');
  }
  const edit: ImageEdit = {};
  if (doc.public !== undefined) {
    if (typeof doc.public !== 'boolean') throw invalid('public must be true or false');
    edit.public = doc.public;
  }
  if (doc.auto_update !== undefined) {
    if (typeof doc.auto_update !== 'boolean') throw invalid('auto_update must be true or false');
    edit.autoUpdate = doc.auto_update;
  }
  if (doc.properties !== undefined) {
    const given = doc.properties ?? {};
    if (typeof given !== 'object' || Array.isArray(given)) throw invalid('properties must be a mapping');
    const properties: Record<string, string> = mode === 'merge' ? { ...image.properties } : {};
    for (const [key, value] of Object.entries(given)) {
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') throw invalid(`properties.${key} must be text`);
      properties[key] = String(value);
    }
    edit.properties = properties;
  }
  if (doc.expires_at !== undefined) {
    const raw = doc.expires_at instanceof Date ? doc.expires_at.toISOString() : doc.expires_at === null ? '' : doc.expires_at;
    if (typeof raw !== 'string') throw invalid('expires_at must be a date');
    if (!raw || raw.startsWith('0001-01-01')) edit.expiresAt = null;
    else if (Number.isNaN(Date.parse(raw))) throw invalid(`expires_at: "${raw}" is not a date`);
    else edit.expiresAt = new Date(raw).toISOString();
  }
  if (doc.profiles !== undefined && doc.profiles !== null) {
    if (!Array.isArray(doc.profiles) || !doc.profiles.every((p) => typeof p === 'string')) throw invalid('profiles must be a list of names');
  }
  return edit;
}

/**
 * Checks `changes` (see imageEditFrom) against the image `ref` names, then applies them.
 * `expect` is checked against the image as read before the write: an If-Match, or the revision an
 * editor session started from.
 */
export async function applyImageEdit(store: { meta: ImageCatalog }, ref: string, changes: unknown, mode: EditMode, expect?: (image: Image) => void): Promise<Image> {
  return editImage(store, ref, (image) => imageEditFrom(image, changes, mode), expect);
}

/** Attempts of an edit that other writers keep overtaking, before it gives up. */
const editAttempts = 10;

/**
 * Applies the edit `change` makes of the image `ref` names, as read now, by compare and set
 * (ImageCatalog.updateImage): when another writer (any process, any replica) changed the image
 * in between, it is read again and the edit made anew, so concurrent edits of different fields
 * all land. `expect` runs on every read and may refuse it (an If-Match naming an older version).
 */
export async function editImage(store: { meta: ImageCatalog }, ref: string, change: (image: Image) => ImageEdit, expect?: (image: Image) => void, actor?: string): Promise<Image> {
  for (let attempt = 1; ; attempt++) {
    const image = await resolveImage(store, ref);
    expect?.(image);
    const edit = change(image);
    const updated: Image = {
      ...image,
      ...(edit.public !== undefined ? { public: edit.public } : {}),
      ...(edit.properties !== undefined ? { properties: edit.properties } : {}),
      ...(edit.expiresAt !== undefined ? { expiresAt: edit.expiresAt } : {}),
      ...(edit.autoUpdate !== undefined ? { autoUpdate: edit.autoUpdate } : {}),
      ...(edit.channels !== undefined ? { channels: channelSet(edit.channels) } : {}),
      ...(edit.pinned !== undefined ? { pinned: channelSet(edit.pinned) } : {}),
      ...(edit.stage !== undefined ? { stage: edit.stage } : {}),
    };
    try {
      await store.meta.updateImage(updated, actor);
      return { ...updated, revision: image.revision + 1 };
    } catch (err) {
      if (!isAppError(err, ErrorCodes.preconditionFailed) || attempt >= editAttempts) throw err;
    }
  }
}

/** An `expect` for editImage: the image is still at the revision `read` was. */
export const unchangedSince = (read: Image) => (image: Image) => {
  if (image.revision !== read.revision) throw changedMeanwhile(`Image ${read.fingerprint.slice(0, 12)}`);
};

export async function setProperty(store: { meta: ImageCatalog }, ref: string, key: string, value: string | undefined): Promise<Image> {
  const { fingerprint } = await resolveImage(store, ref);
  return editImage(store, fingerprint, (image) => {
    const properties = { ...image.properties };
    if (value === undefined) {
      if (!(key in properties)) throw new AppError(ErrorCodes.notFound, `Image ${image.fingerprint.slice(0, 12)} has no property "${key}"`);
      delete properties[key];
    } else {
      properties[key] = value;
    }
    return { properties };
  });
}

/**
 * Puts the image `ref` names into `channel` (`promote`) or takes it out (`demote`), as one edit
 * that concurrent edits of other fields do not undo. Its channel's clients see it at the next
 * publish: a demoted newest version rolls them back to the one before.
 */
export async function moveToChannel(store: { meta: ImageCatalog }, ref: string, channel: string, move: 'promote' | 'demote', actor: string): Promise<Image> {
  checkChannel(channel);
  return editImage(
    store,
    ref,
    (image) => ({ channels: move === 'promote' ? [...image.channels, channel] : image.channels.filter((c) => c !== channel) }),
    undefined,
    actor,
  );
}

/** Pins the image `ref` names in `channel` (its retention keeps it whatever its age), or unpins it. */
export async function pinInChannel(store: { meta: ImageCatalog }, ref: string, channel: string, pin: boolean, actor: string): Promise<Image> {
  checkChannel(channel);
  return editImage(store, ref, (image) => ({ pinned: pin ? [...image.pinned, channel] : image.pinned.filter((c) => c !== channel) }), undefined, actor);
}

/**
 * Deletes the images `refs` name, all or none: one bad name, or an image another process deleted
 * meanwhile, deletes nothing, and the error names what was asked for.
 */
export async function deleteImages(store: { meta: ImageCatalog }, refs: string[], actor = ''): Promise<Image[]> {
  const resolved = await Promise.all(refs.map((ref) => resolveImage(store, ref)));
  // The same image named twice (by alias and by fingerprint, say) is deleted once.
  const images = [...new Map(resolved.map((i) => [i.fingerprint, i])).values()];
  try {
    await store.meta.deleteImages(images.map((i) => i.fingerprint), actor);
  } catch (err) {
    if (!isAppError(err, ErrorCodes.notFound)) throw err;
    const gone = await Promise.all(resolved.map(async (image) => (await store.meta.getImage(image.fingerprint)) === undefined));
    const ref = refs[gone.indexOf(true)] ?? refs[0]!;
    throw new AppError(ErrorCodes.notFound, `Image "${ref}" not found: it was deleted meanwhile`, { hint: 'Nothing was deleted.', cause: err });
  }
  return images;
}

export interface ExportedFile {
  role: 'unified' | 'metadata' | 'rootfs';
  blob: BlobRef;
  /** The names lxc gives them: FP.EXT for unified, meta-FP.EXT + FP.EXT for split. */
  name: string;
}

export function exportedFiles(image: Image): ExportedFile[] {
  if (!image.rootfs) return [{ role: 'unified', blob: image.metadata, name: `${image.fingerprint}${formatExtension(image.metadata.format)}` }];
  return [
    { role: 'metadata', blob: image.metadata, name: `meta-${image.fingerprint}${formatExtension(image.metadata.format)}` },
    { role: 'rootfs', blob: image.rootfs, name: `${image.fingerprint}${formatExtension(image.rootfs.format)}` },
  ];
}

/** Writes the image's files into `dir`, each through a temp name so a cut-off export leaves no half file. */
export async function exportImage(store: StoreWith<ImageCatalog>, ref: string, dir: string, signal?: AbortSignal): Promise<string[]> {
  const image = await resolveImage(store, ref);
  await ensureDirectory(dir);
  const written: string[] = [];
  for (const file of exportedFiles(image)) {
    const target = join(dir, file.name);
    const temp = `${target}.part`;
    try {
      await pipeline(await store.blobs.openRead(file.blob.sha256), createWriteStream(temp), { ...(signal ? { signal } : {}) });
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    written.push(target);
  }
  return written;
}

export interface VerifyResult {
  fingerprint: string;
  ok: boolean;
  problems: string[];
}

/** Re-reads every stored byte: each file against its sha256, the image against its fingerprint. */
export async function verifyImages(store: Store, refs: string[] = []): Promise<VerifyResult[]> {
  const images = refs.length ? await Promise.all(refs.map((r) => resolveImage(store, r))) : await store.meta.listImages();
  const results: VerifyResult[] = [];
  for (const image of images) {
    const problems: string[] = [];
    const combined = createHash('sha256');
    for (const blob of [image.metadata, image.rootfs]) {
      if (!blob) continue;
      if ((await store.blobs.size(blob.sha256)) === undefined && (await store.meta.getBlob(blob.sha256))?.sourceUrl) {
        // A lazily mirrored file not fetched yet: nothing stored, nothing to check.
        continue;
      }
      try {
        const { sha256, size } = await hashBlob(store, blob.sha256, combined);
        if (size !== blob.size) problems.push(`file ${blob.sha256}: ${size} bytes, expected ${blob.size}`);
        if (sha256 !== blob.sha256) problems.push(`file ${blob.sha256}: content hashes to ${sha256}`);
      } catch (err) {
        problems.push(`file ${blob.sha256}: ${(err as Error).message}`);
      }
    }
    const complete = (await Promise.all([image.metadata, image.rootfs].map(async (b) => !b || (await store.blobs.size(b.sha256)) !== undefined))).every(Boolean);
    if (problems.length === 0 && complete && image.rootfs && combined.digest('hex') !== image.fingerprint) {
      problems.push('the files do not hash to the image fingerprint');
    }
    results.push({ fingerprint: image.fingerprint, ok: problems.length === 0, problems });
  }
  return results;
}

async function hashBlob(store: Store, sha256: string, also: Hash) {
  const own = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      own.update(chunk);
      also.update(chunk);
      size += chunk.length;
      done();
    },
  });
  await pipeline(await store.blobs.openRead(sha256), tap);
  return { sha256: own.digest('hex'), size };
}
