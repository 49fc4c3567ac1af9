/**
 * Reading another server's simplestreams products file into images, the way LXD and Incus do
 * (shared/simplestreams/products.go): both vocabularies understood, metadata items paired with
 * every rootfs item of their version, fingerprints taken from the combined_* fields, versions
 * without a YYYYMMDD key and products of unknown architecture skipped.
 */
import { canonicalArchitecture } from './architecture.ts';
import type { ImageType } from './image.ts';
import { isSha256 } from './fingerprint.ts';
import type { Counted } from './usage.ts';

export interface RemoteFile {
  ftype: string;
  path: string;
  sha256: string;
  size: number;
  /** For delta files: the version they patch from. */
  deltaBase?: string;
}

export interface RemoteImage {
  fingerprint: string;
  type: ImageType;
  /** Canonical architecture. */
  architecture: string;
  productKey: string;
  version: string;
  /** Product aliases as published (comma-split, untrimmed as clients do). */
  aliases: string[];
  properties: Record<string, string>;
  /** The unified tarball, or the metadata tarball of a split image. */
  metadata: RemoteFile;
  rootfs: RemoteFile | null;
  /** Delta files (*.vcdiff) of the same version, mirrored but never required. */
  deltas: RemoteFile[];
  createdAt: string;
  expiresAt: string | null;
}

const metaFtypes = new Set(['lxd.tar.xz', 'incus.tar.xz']);
const unifiedFtypes = new Set(['lxd_combined.tar.gz', 'incus_combined.tar.gz']);
const rootFtypes: Record<string, { field: string[]; type: ImageType }> = {
  squashfs: { field: ['combined_squashfs_sha256'], type: 'container' },
  'root.tar.xz': { field: ['combined_rootxz_sha256', 'combined_sha256'], type: 'container' },
  'disk-kvm.img': { field: ['combined_disk-kvm-img_sha256'], type: 'virtual-machine' },
  'disk1.img': { field: ['combined_disk1-img_sha256'], type: 'virtual-machine' },
  'uefi1.img': { field: ['combined_uefi1-img_sha256'], type: 'virtual-machine' },
};

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown) => (typeof v === 'string' ? v : '');

function file(raw: Json): RemoteFile | undefined {
  const ftype = str(raw.ftype);
  const path = str(raw.path);
  const sha256 = str(raw.sha256).toLowerCase();
  const size = raw.size;
  if (!ftype || !path || !isSha256(sha256) || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined;
  const deltaBase = str(raw.delta_base);
  return { ftype, path, sha256, size, ...(deltaBase ? { deltaBase } : {}) };
}

/** "20261122_07:42" or "202611220742": the date part is what clients use. */
export function versionDate(version: string): string | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})/.exec(version);
  if (!m) return undefined;
  const date = new Date(`${m[1]}-${m[2]}-${m[3]}T00:00:00Z`);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

export function readProducts(doc: unknown): RemoteImage[] {
  if (!isObject(doc) || !isObject(doc.products)) throw new Error('not a simplestreams products document (no "products")');
  const images = new Map<string, RemoteImage>();
  for (const [productKey, product] of Object.entries(doc.products)) {
    if (!isObject(product) || !isObject(product.versions)) continue;
    const archRaw = str(product.arch);
    const architecture = canonicalArchitecture(archRaw);
    if (!architecture) continue;
    const requirements = isObject(product.requirements) ? product.requirements : isObject(product.lxd_requirements) ? product.lxd_requirements : {};
    const aliases = str(product.aliases) ? str(product.aliases).split(',') : [];
    for (const [version, entry] of Object.entries(product.versions)) {
      const createdAt = versionDate(version);
      if (!createdAt || !isObject(entry) || !isObject(entry.items)) continue;
      const files = Object.values(entry.items).flatMap((raw) => (isObject(raw) ? [{ raw, file: file(raw) }] : []));
      const base: Record<string, string> = {
        os: str(product.os),
        release: str(product.release),
        version: str(product.version),
        architecture: archRaw,
        label: str(entry.label),
        serial: version,
        variant: str(product.variant),
        release_title: str(product.release_title),
      };
      for (const [k, v] of Object.entries(requirements)) if (typeof v === 'string') base[`requirements.${k}`] = v;
      const describe = (type: string) => {
        const properties: Record<string, string> = { ...base, type };
        properties.description = [properties.os, properties.release_title || properties.release, archRaw, properties.label && `(${properties.label})`, `(${version})`]
          .filter(Boolean)
          .join(' ');
        return Object.fromEntries(Object.entries(properties).filter(([, v]) => v !== ''));
      };
      const deltas = files.filter((f) => f.file && f.file.ftype.endsWith('.vcdiff')).map((f) => f.file!);
      const add = (image: Omit<RemoteImage, 'architecture' | 'productKey' | 'version' | 'aliases' | 'createdAt' | 'expiresAt'>) => {
        if (images.has(image.fingerprint)) return;
        const eol = str(product.support_eol);
        images.set(image.fingerprint, {
          ...image,
          architecture,
          productKey,
          version,
          aliases,
          createdAt,
          expiresAt: /^\d{4}-\d{2}-\d{2}$/.test(eol) ? `${eol}T00:00:00.000Z` : null,
        });
      };
      for (const { raw, file: f } of files) {
        if (!f) continue;
        if (unifiedFtypes.has(f.ftype)) {
          const vm = str(raw.combined_type) === 'virtual-machine';
          add({ fingerprint: f.sha256, type: vm ? 'virtual-machine' : 'container', properties: describe('tar.gz'), metadata: f, rootfs: null, deltas: [] });
        }
        if (!metaFtypes.has(f.ftype)) continue;
        for (const root of files) {
          const rule = root.file && rootFtypes[root.file.ftype];
          if (!rule) continue;
          const fingerprint = rule.field.map((k) => str(raw[k]).toLowerCase()).find(isSha256);
          if (!fingerprint) continue;
          const ownDeltas = deltas.filter((d) => d.ftype === `${root.file!.ftype}.vcdiff`);
          add({ fingerprint, type: rule.type, properties: describe(root.file!.ftype), metadata: f, rootfs: root.file!, deltas: ownDeltas });
        }
      }
    }
  }
  return [...images.values()];
}

/**
 * The image a download of each path counts for, by path: the file that makes an image (a
 * rootfs or VM disk, a unified tarball) and its deltas, under the image's fingerprint and
 * product. A file two images share (one rootfs under both vocabularies' metadata) counts for the
 * first listed: its download cannot tell them apart. Metadata files count for nothing.
 */
export function countedPaths(doc: unknown): Map<string, Counted> {
  const counted = new Map<string, Counted>();
  for (const image of readProducts(doc)) {
    const owner = { fingerprint: image.fingerprint, product: image.productKey };
    for (const f of [image.rootfs ?? image.metadata, ...image.deltas]) {
      const path = f.path.replace(/^\/+/, '');
      if (!counted.has(path)) counted.set(path, owner);
    }
  }
  return counted;
}

/** The products files an index points at (entries with image-downloads and products). */
export function readIndex(doc: unknown): string[] {
  if (!isObject(doc) || !isObject(doc.index)) throw new Error('not a simplestreams index (no "index")');
  return Object.values(doc.index)
    .filter((e): e is Json => isObject(e) && e.datatype === 'image-downloads' && Array.isArray(e.products) && e.products.length > 0)
    .map((e) => str(e.path))
    .filter(Boolean);
}

/**
 * Every well-formed file a products document lists, whatever its product, architecture or
 * version: what a caching mirror may serve, each with the size and sha256 it must have.
 */
export function listedFiles(doc: unknown): RemoteFile[] {
  if (!isObject(doc) || !isObject(doc.products)) throw new Error('not a simplestreams products document (no "products")');
  const files: RemoteFile[] = [];
  for (const product of Object.values(doc.products)) {
    if (!isObject(product) || !isObject(product.versions)) continue;
    for (const entry of Object.values(product.versions)) {
      if (!isObject(entry) || !isObject(entry.items)) continue;
      for (const raw of Object.values(entry.items)) {
        const f = isObject(raw) ? file(raw) : undefined;
        if (f) files.push(f);
      }
    }
  }
  return files;
}
