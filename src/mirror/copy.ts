/**
 * `wharf image copy REMOTE:IMAGE`: one image from another server into the store, every file
 * checked against its sha256 and the image against its fingerprint while it streams in.
 */
import type { Image, ImageType } from '../domain/image.ts';
import type { RemoteRecord } from '../meta/store.ts';
import type { Store } from '../core/context.ts';
import { importImage, type ImportRequest } from '../core/import.ts';
import { AppError, ErrorCodes, asUpstreamFault, isAppError } from '../errors.ts';
import type { IngestSource } from '../core/ingest.ts';
import type { RemoteImage } from '../domain/simplestreams-read.ts';
import { isFingerprintPrefix } from '../domain/fingerprint.ts';
import { loadCatalogue, remoteSource, resolveRemoteImage } from '../remote/simplestreams.ts';
import { openLxdImage, type LxdImageSource } from '../remote/lxd.ts';
import { getRemote, splitRef } from './remotes.ts';

export interface CopyOptions {
  type: ImageType;
  aliases?: string[];
  copyAliases?: boolean;
  autoUpdate?: boolean;
  public?: boolean;
  onBytes?: (n: number) => void;
  /** Called once the image is resolved, with its total size (for a progress bar). */
  onStart?: (totalBytes: number) => void;
  signal?: AbortSignal;
  /** Largest image accepted from an LXD-protocol remote. */
  limit?: number;
  /** Set on the copy, over the remote's own. */
  properties?: Record<string, string>;
}

const fetchOptions = (remote: RemoteRecord, signal?: AbortSignal) => ({ certificate: remote.certificate || undefined, signal });
const signedBy = (remote: RemoteRecord) => remote.gpgKey || undefined;

/** Imports one image of a simplestreams catalogue (used by copies and mirror syncs). */
export async function importRemoteImage(
  store: Store,
  remote: RemoteRecord,
  image: RemoteImage,
  options: {
    aliases: string[];
    public: boolean;
    autoUpdate: boolean;
    updateAlias: string;
    properties?: Record<string, string>;
    cached?: boolean;
    productAliases?: string[];
    mirror?: string;
    /** Give up on a transfer that sends nothing for this long. */
    idleTimeoutMs?: number;
    onBytes?: (n: number) => void;
    signal?: AbortSignal;
  },
): Promise<Image> {
  const fetch = { ...fetchOptions(remote, options.signal), ...(options.idleTimeoutMs ? { idleTimeoutMs: options.idleTimeoutMs } : {}) };
  const sources = [image.metadata, ...(image.rootfs ? [image.rootfs] : [])].map((f) => remoteSource(remote.url, f, fetch));
  return upstreamImport(store, {
    sources: sources as [IngestSource] | [IngestSource, IngestSource],
    expectedFingerprint: image.fingerprint,
    public: options.public,
    properties: { ...image.properties, ...options.properties },
    aliases: options.aliases,
    autoUpdate: options.autoUpdate,
    cached: options.cached ?? false,
    updateSource: { server: remote.url, protocol: remote.protocol, alias: options.updateAlias, certificate: remote.certificate, imageType: image.type, ...(remote.gpgKey ? { gpgKey: remote.gpgKey } : {}) },
    ...(options.productAliases ? { productAliases: options.productAliases } : {}),
    ...(options.mirror ? { mirror: options.mirror } : {}),
    ...(options.onBytes ? { onBytes: options.onBytes } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/** `image copy REMOTE:IMAGE`: IMAGE (an alias or a fingerprint) from the remote of that name. */
export async function copyFromRemote(store: Store, remoteRef: string, options: CopyOptions): Promise<Image> {
  const { remote, image } = splitRef(remoteRef);
  if (!remote) throw new AppError(ErrorCodes.invalidArgument, `"${remoteRef}" names no remote`, { hint: 'Use REMOTE:IMAGE, e.g. images:debian/12.' });
  return copyImage(store, await getRemote(store, remote), image, options);
}

export async function copyImage(store: Store, remote: RemoteRecord, ref: string, options: CopyOptions): Promise<Image> {
  if (remote.protocol === 'oci') {
    throw new AppError(ErrorCodes.invalidArgument, `Remote "${remote.name}" is an OCI registry, not an image server`, { hint: `Its images are served by wharf's registry, at /v2/${remote.name}/REPOSITORY.` });
  }
  const isFingerprint = isFingerprintPrefix(ref, 6);
  if (remote.protocol === 'simplestreams') {
    const catalogue = await loadCatalogue(remote.url, fetchOptions(remote, options.signal), signedBy(remote)).catch((err: unknown) => {
      // No index there is the server's fault (502), unlike an image its index does not list (404).
      if (isAppError(err, ErrorCodes.notFound)) throw new AppError(ErrorCodes.unavailable, `${remote.url} serves no simplestreams index: ${err.message}`, { cause: err });
      throw err;
    });
    const image = resolveRemoteImage(catalogue, ref, { type: options.type });
    await refuseDuplicate(store, image.fingerprint);
    options.onStart?.(image.metadata.size + (image.rootfs?.size ?? 0));
    const taken = new Set((await store.meta.listAliases()).map((a) => a.name));
    const copied = options.copyAliases ? image.aliases.filter((a) => !taken.has(a)) : [];
    return importRemoteImage(store, remote, image, {
      aliases: [...new Set([...(options.aliases ?? []), ...copied])],
      public: options.public ?? true,
      autoUpdate: options.autoUpdate ?? false,
      updateAlias: isFingerprint ? '' : ref,
      ...(options.properties ? { properties: options.properties } : {}),
      ...(options.onBytes ? { onBytes: options.onBytes } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }
  return importLxdImage(store, { server: remote.url, certificate: remote.certificate || undefined, ...(isFingerprint ? { fingerprint: ref } : { alias: ref }) }, {
    aliases: options.aliases ?? [],
    copyAliases: options.copyAliases ?? false,
    public: options.public ?? true,
    autoUpdate: options.autoUpdate ?? false,
    limit: options.limit ?? Number.MAX_SAFE_INTEGER,
    ...(options.properties ? { properties: options.properties } : {}),
    ...(options.onStart ? { onStart: options.onStart } : {}),
    ...(options.onBytes ? { onBytes: options.onBytes } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/** What a pull-mode `POST /1.0/images` names: a server of either protocol and an image on it. */
export interface PullSource extends LxdImageSource {
  protocol: string | undefined;
  imageType: string | undefined;
}

/**
 * A pull-mode `POST /1.0/images` (what `incus image copy SRC:IMAGE wharf:` and `lxc image copy`
 * send): from a simplestreams server, the image is resolved in its index as the daemons do (an
 * alias, else a fingerprint, of the requested type); from an LXD-protocol server, see
 * importLxdImage.
 */
export async function pullImage(
  store: Store,
  source: PullSource,
  options: { aliases: string[]; public: boolean; autoUpdate: boolean; properties: Record<string, string>; limit: number },
): Promise<Image> {
  const protocol = source.protocol || 'lxd';
  if (protocol === 'simplestreams') {
    const ref = source.alias || source.fingerprint;
    if (!ref) throw new AppError(ErrorCodes.invalidArgument, 'The source names neither a fingerprint nor an alias');
    const type: ImageType = source.imageType === 'virtual-machine' ? 'virtual-machine' : 'container';
    const remote: RemoteRecord = { name: '', url: source.server, protocol: 'simplestreams', public: true, certificate: source.certificate ?? '', gpgKey: '' };
    return copyImage(store, remote, ref, { type, aliases: options.aliases, public: options.public, autoUpdate: options.autoUpdate, limit: options.limit, properties: options.properties });
  }
  if (protocol !== 'lxd' && protocol !== 'incus') throw new AppError(ErrorCodes.invalidArgument, `Unknown image server protocol "${protocol}"`);
  return importLxdImage(store, source, options);
}

/** Pulls one image from an LXD-protocol server (copies, and pull-mode POST /1.0/images). */
export async function importLxdImage(
  store: Store,
  source: LxdImageSource,
  options: { aliases: string[]; copyAliases?: boolean; public: boolean; autoUpdate: boolean; properties?: Record<string, string>; limit: number; onStart?: (totalBytes: number) => void; onBytes?: (n: number) => void; signal?: AbortSignal },
): Promise<Image> {
  const { info, sources, alias } = await openLxdImage(source, { limit: options.limit, ...(options.signal ? { signal: options.signal } : {}) });
  await refuseDuplicate(store, info.fingerprint);
  options.onStart?.(info.size);
  const copied = options.copyAliases ? info.aliases.map((a) => a.name) : [];
  return upstreamImport(store, {
    sources: sources as [IngestSource] | [IngestSource, IngestSource],
    expectedFingerprint: info.fingerprint,
    public: options.public,
    properties: { ...info.properties, ...options.properties },
    aliases: [...new Set([...options.aliases, ...copied])],
    autoUpdate: options.autoUpdate,
    updateSource: { server: source.server, protocol: 'lxd', alias: alias ?? '', certificate: source.certificate ?? '', imageType: info.type },
    ...(options.onBytes ? { onBytes: options.onBytes } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/**
 * An import of bytes another server sent: a file that differs from what the server's index or
 * image record promised, or an image clients would refuse, is that server's fault
 * (`upstream_corrupt`), not the fault of whoever asked for the copy.
 */
async function upstreamImport(store: Store, request: ImportRequest): Promise<Image> {
  try {
    return await importImage(store, request);
  } catch (err) {
    throw asUpstreamFault(err);
  }
}

async function refuseDuplicate(store: Store, fingerprint: string) {
  if (await store.meta.getImage(fingerprint)) throw new AppError(ErrorCodes.conflict, `Image with fingerprint ${fingerprint} already exists`);
}
