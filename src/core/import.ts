/**
 * Importing an image: unified (one tarball) or split (metadata tarball + rootfs or VM disk).
 * The bytes are read once; the store changes only after every check passed, and then atomically
 * (blobs first, then one metadata transaction), so a failed import leaves nothing behind.
 */
import { basename } from 'node:path';
import { channelSet, defaultChannel, stagingChannel } from '../domain/channel.ts';
import { AppError, ErrorCodes, invalidImage } from '../errors.ts';
import { parseMetadataYaml, type ImageMetadata } from '../domain/metadata.ts';
import type { Alias, BlobRef, Image, ImageType } from '../domain/image.ts';
import { ingest, type FileRole, type IngestSource, type StagedFile } from './ingest.ts';
import type { Store } from './context.ts';
import { validateAliasName } from './aliases.ts';
import { OffThreadHash } from '../hashing/off-thread-hash.ts';
import { commitBlobs } from './collect.ts';
import { productKeyOf } from '../domain/product.ts';

export interface ImportRequest {
  /** One source (unified) or two (metadata, then rootfs or disk). */
  sources: [IngestSource] | [IngestSource, IngestSource];
  aliases?: string[];
  public?: boolean;
  /** The channels it is published in; the default channel unless given. */
  channels?: string[];
  /** Who imports it (a CLI user, a certificate's or a push token's name, a mirror): its `image.uploaded` event says so. */
  actor?: string;
  properties?: Record<string, string>;
  /** If the caller already knows the fingerprint (uploads, mirrors), it must match. */
  expectedFingerprint?: string;
  /**
   * Asked with the image's product key as soon as its metadata is read, before its rootfs is: a
   * push token refuses products it may not push (it throws).
   */
  admitProduct?: (productKey: string) => void;
  onBytes?: (n: number) => void;
  signal?: AbortSignal;
  /** Fields set by copies from other servers. */
  autoUpdate?: boolean;
  cached?: boolean;
  updateSource?: Image['updateSource'];
  /** Mirrored images keep their upstream product's aliases and belong to their mirror. */
  productAliases?: string[];
  mirror?: string;
  now?: Date;
}

export async function importImage(store: Store, request: ImportRequest): Promise<Image> {
  const aliasNames = [...new Set(request.aliases ?? [])];
  for (const name of aliasNames) {
    validateAliasName(name);
    if (await store.meta.getAlias(name)) throw new AppError(ErrorCodes.conflict, `Alias "${name}" already exists`);
  }

  const staged: StagedFile[] = [];
  let combined: OffThreadHash | undefined;
  try {
    const split = request.sources.length === 2;
    combined = split ? new OffThreadHash() : undefined;
    const stage = async (source: IngestSource, role: FileRole) => {
      const file = await ingest(source, {
        role,
        blobs: store.blobs,
        ...(combined ? { combined } : {}),
        ...(request.onBytes ? { onBytes: request.onBytes } : {}),
        ...(request.signal ? { signal: request.signal } : {}),
      });
      staged.push(file);
      return file;
    };

    const metaName = request.sources[0].name;
    const first = await stage(request.sources[0], split ? 'metadata' : 'unified');
    // Everything the metadata tarball can be refused for is known now: refuse it before a
    // (possibly large) rootfs is read at all.
    const yaml = first.tarball?.metadataYaml;
    if (yaml === undefined) throw invalidImage(`${metaName} has no metadata.yaml`, 'Every image needs metadata.yaml at the top of its (metadata) tarball.');
    const metadata = parseMetadataYaml(yaml);
    if (request.admitProduct) {
      const properties = { ...metadata.properties, ...request.properties };
      request.admitProduct(productKeyOf({ properties, architecture: metadata.architecture, fingerprint: '' }));
    }
    if (split && (first.tarball!.hasRootfsDir || first.tarball!.hasRootfsImg)) {
      throw invalidImage(`${metaName} is a unified image (it holds ${first.tarball!.hasRootfsImg ? 'rootfs.img' : 'rootfs/'}); import it on its own`);
    }
    const second = request.sources[1] ? await stage(request.sources[1], 'rootfs') : undefined;
    const type = imageType(first, second, metaName, request.sources[1]?.name, metadata);

    const fingerprint = combined ? await combined.digest() : await first.writer.digest();
    if (request.expectedFingerprint && request.expectedFingerprint !== fingerprint) {
      throw new AppError(ErrorCodes.integrity, `Fingerprint mismatch: got ${fingerprint}, expected ${request.expectedFingerprint}`);
    }
    if (await store.meta.getImage(fingerprint)) {
      throw new AppError(ErrorCodes.conflict, `Image with fingerprint ${fingerprint} already exists`);
    }

    const metaBlob: BlobRef = { sha256: await first.writer.digest(), size: first.writer.size, format: first.format };
    const rootBlob: BlobRef | null = second ? { sha256: await second.writer.digest(), size: second.writer.size, format: second.format } : null;
    const now = (request.now ?? new Date()).toISOString();
    const image: Image = {
      fingerprint,
      type,
      architecture: metadata.architecture,
      filename: basename((request.sources[1] ?? request.sources[0]).name),
      size: metaBlob.size + (rootBlob?.size ?? 0),
      public: request.public ?? true,
      createdAt: new Date(metadata.creationDate * 1000).toISOString(),
      uploadedAt: now,
      expiresAt: metadata.expiryDate ? new Date(metadata.expiryDate * 1000).toISOString() : null,
      lastUsedAt: null,
      properties: { ...metadata.properties, ...request.properties },
      templates: metadata.templates,
      metadata: metaBlob,
      rootfs: rootBlob,
      autoUpdate: request.autoUpdate ?? false,
      cached: request.cached ?? false,
      updateSource: request.updateSource ?? null,
      productAliases: request.productAliases ?? [],
      mirror: request.mirror ?? null,
      deltas: [],
      channels: channelSet(request.channels ?? [defaultChannel]),
      pinned: [],
      // An image entering staging waits there for its tests (pipeline/stage.ts).
      stage: request.channels?.includes(stagingChannel) ? { state: 'uploaded', at: now } : null,
      revision: 1,
    };
    const aliases: Alias[] = aliasNames.map((name) => ({ name, fingerprint, description: '', type }));
    // Everything checked out (the record above included): only now may the store change.
    await commitBlobs(store, staged.map((s) => s.writer), () => store.meta.insertImage(image, aliases, {}, request.actor));
    store.log.info('image imported', { fingerprint, type, size: image.size });
    return image;
  } finally {
    // Committed writers ignore this; the others drop their staging files.
    combined?.drop();
    await Promise.all(staged.map((s) => s.writer.abort()));
  }
}

/** The type comes from the files, as LXD decides it; metadata that says otherwise is an error. */
function imageType(first: StagedFile, second: StagedFile | undefined, metaName: string, rootName: string | undefined, metadata: ImageMetadata): ImageType {
  const summary = first.tarball!;
  let type: ImageType;
  if (!second) {
    if (summary.hasRootfsImg) type = 'virtual-machine';
    else if (summary.hasRootfsDir) type = 'container';
    else throw invalidImage(`${metaName} has neither rootfs/ nor rootfs.img`, 'A split image is imported as two files: METADATA ROOTFS.');
  } else {
    type = second.format.kind === 'qcow2' ? 'virtual-machine' : 'container';
  }
  const declared = metadata.properties.type ?? metadata.properties.image_type;
  if ((declared === 'container' || declared === 'virtual-machine') && declared !== type) {
    throw invalidImage(
      `${metaName} describes a ${declared} but ${rootName ?? metaName} holds a ${type === 'container' ? 'container root filesystem' : 'VM disk'}`,
    );
  }
  return type;
}
