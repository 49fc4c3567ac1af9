/**
 * The registry's repositories to and from an OCI image layout directory (`oci-layout`,
 * `index.json`, `blobs/sha256/HEX`), for a transfer to an air-gapped site: `wharf oci export
 * DIR REPO[:TAG]...` writes what the tags reach (indexes, every platform, configs and layers),
 * each blob once; `wharf oci import DIR` pushes it all into another wharf, every byte checked
 * against its digest on the way in. Each top-level entry names its repository and tag
 * (`io.containerd.image.name`, and `org.opencontainers.image.ref.name` the tag, as skopeo and
 * podman read a layout).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { AppError, ErrorCodes } from '../errors.ts';
import { checkRepository, isTag, parseDigest } from '../domain/oci.ts';
import type { OciManifest } from '../meta/store.ts';
import { manifestOf, pushManifest, repositoryBlob, uploadWhole } from '../core/registry.ts';
import type { Store } from '../core/context.ts';

const nameKey = 'io.containerd.image.name';
const refKey = 'org.opencontainers.image.ref.name';

interface Entry {
  mediaType: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

/** `REPO[:TAG]` as given on the command line (the tag `latest` when absent). */
export function parseImageName(text: string): { repository: string; tag: string } {
  const colon = text.lastIndexOf(':');
  const [repository, tag] = colon > text.lastIndexOf('/') && colon >= 0 ? [text.slice(0, colon), text.slice(colon + 1)] : [text, 'latest'];
  if (!isTag(tag)) throw new AppError(ErrorCodes.invalidArgument, `"${tag}" is not a tag`);
  return { repository: checkRepository(repository), tag };
}

/** Writes the images into `dir` (created if needed); what was written. */
export async function exportLayout(store: Store, dir: string, names: string[]): Promise<{ images: number; blobs: number; bytes: number }> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const written = new Set<string>();
  let bytes = 0;
  const copy = async (repository: string, sha256: string) => {
    if (written.has(sha256)) return;
    const blob = await repositoryBlob(store, repository, sha256);
    if (!blob) throw new AppError(ErrorCodes.notFound, `${repository}: blob sha256:${sha256} is not here (a cached image not pulled whole): pull every platform first`);
    const target = join(dir, 'blobs', 'sha256', sha256);
    await pipeline(await store.blobs.openRead(sha256), createWriteStream(`${target}.part`));
    await rename(`${target}.part`, target);
    written.add(sha256);
    bytes += blob.size;
  };
  const walk = async (manifest: OciManifest): Promise<void> => {
    for (const child of manifest.manifests) await walk(await manifestOf(store, manifest.repository, { sha256: child }));
    for (const blob of manifest.blobs) await copy(manifest.repository, blob);
    await copy(manifest.repository, manifest.sha256);
  };
  const entries: Entry[] = [];
  for (const name of names) {
    const { repository, tag } = parseImageName(name);
    const manifest = await manifestOf(store, repository, { tag });
    await walk(manifest);
    entries.push({ mediaType: manifest.mediaType, digest: `sha256:${manifest.sha256}`, size: manifest.size, annotations: { [nameKey]: `${repository}:${tag}`, [refKey]: tag } });
  }
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries }, null, 2));
  return { images: entries.length, blobs: written.size, bytes };
}

/**
 * Pushes every image of the layout in `dir` into the registry: its repository from the entry's
 * name (or `repository` for a layout of one repository from elsewhere), its tag from its ref name.
 */
export async function importLayout(store: Store, dir: string, options: { repository?: string } = {}): Promise<{ images: string[] }> {
  let index: { manifests?: Entry[] };
  try {
    index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests?: Entry[] };
  } catch (err) {
    throw new AppError(ErrorCodes.invalidArgument, `${dir} is not an OCI image layout (no readable index.json)`, { cause: err });
  }
  const blobPath = (sha256: string) => join(dir, 'blobs', 'sha256', sha256);
  const pushed = new Set<string>();
  // What this import added, taken out again if it fails: a bad layout leaves the registry as it was.
  const added: { links: [string, string][]; manifests: [string, string][] } = { links: [], manifests: [] };
  const pushTree = async (repository: string, sha256: string, mediaType: string, tag?: string) => {
    const bytes = await readFile(blobPath(sha256)).catch((err: unknown) => {
      throw new AppError(ErrorCodes.invalidArgument, `${dir}: blob sha256:${sha256} is missing`, { cause: err });
    });
    if (createHash('sha256').update(bytes).digest('hex') !== sha256) throw new AppError(ErrorCodes.integrity, `${dir}: manifest sha256:${sha256} does not hash to its name`);
    const body = JSON.parse(bytes.toString('utf8')) as { manifests?: { digest: string; mediaType: string }[]; config?: { digest: string }; layers?: { digest: string }[] };
    for (const child of body.manifests ?? []) await pushTree(repository, parseDigest(child.digest), child.mediaType);
    for (const blob of [...(body.config ? [body.config] : []), ...(body.layers ?? [])]) {
      const sha = parseDigest(blob.digest);
      if (pushed.has(`${repository}@${sha}`)) continue;
      if (!(await store.meta.ociBlobLinked(repository, sha))) added.links.push([repository, sha]);
      await uploadWhole(store, repository, sha, createReadStream(blobPath(sha)));
      pushed.add(`${repository}@${sha}`);
    }
    if (tag === undefined && !(await store.meta.getOciManifest(repository, { sha256 }))) added.manifests.push([repository, sha256]);
    await pushManifest(store, repository, tag === undefined ? { sha256 } : { tag }, bytes, mediaType);
  };
  const images: string[] = [];
  try {
    for (const entry of index.manifests ?? []) {
      const named = entry.annotations?.[nameKey];
      const tag = entry.annotations?.[refKey] ?? (named ? parseImageName(named).tag : undefined);
      const repository = options.repository ?? (named ? parseImageName(named).repository : undefined);
      if (!repository || !tag) throw new AppError(ErrorCodes.invalidArgument, `${dir}: an entry names no repository and tag`, { hint: 'Give --repository for a layout that does not name them.' });
      await pushTree(checkRepository(repository), parseDigest(entry.digest), entry.mediaType, tag);
      images.push(`${repository}:${tag}`);
    }
  } catch (err) {
    // Tags first went with nothing (each is the last write of its image); then what was added.
    for (const [repository, sha256] of added.manifests.reverse()) await store.meta.deleteOciManifest(repository, sha256).catch(() => {});
    for (const [repository, sha256] of added.links) await store.meta.unlinkOciBlob(repository, sha256).catch(() => {});
    throw err;
  }
  return { images };
}
