/**
 * The simplestreams documents (streams/v1/index.json and the products file), built from the
 * public images of the store. Pure: the core renders them once per store change and the HTTP
 * layer only copies the bytes.
 *
 * Both vocabularies are published side by side (protocols.md §1.4): LXD reads `lxd.tar.xz` and
 * `lxd_combined.tar.gz` items, Incus reads `incus.tar.xz` and `incus_combined.tar.gz` items.
 */
import type { Alias, BlobRef, Image } from './image.ts';
import { productOf, serialOf, type Product } from './product.ts';
import { defaultReleaseNames, type ReleaseNames } from './release-names.ts';

export const indexPath = 'streams/v1/index.json';

/**
 * What a client can use differs by client: Incus before 7.1 reads every unified tarball as a
 * container (combined_type came in 7.1), so a unified VM image is left out of its view rather
 * than offered as something it is not. Everyone else (LXD, which never reads Incus items, newer
 * Incus, other tools) gets the full view.
 */
export type ClientView = 'full' | 'incus-before-7.1';
export const clientViews: ClientView[] = ['full', 'incus-before-7.1'];

/** The view for a request's User-Agent (`Incus 6.0.4 (Linux; x86_64; ...)`, `LXD 5.0.2 (...)`). */
export function viewForUserAgent(userAgent: string | undefined): ClientView {
  const version = /^Incus (\d+)\.(\d+)/.exec(userAgent ?? '');
  if (!version) return 'full';
  const [major, minor] = [Number(version[1]), Number(version[2])];
  return major < 7 || (major === 7 && minor < 1) ? 'incus-before-7.1' : 'full';
}

/** A User-Agent of each client family whose view differs, for checking what each one is served. */
export const publishedClients: Record<string, string> = {
  lxd: 'LXD 5.0.2 (wharf verify)',
  'incus-6': 'Incus 6.0.4 (wharf verify)',
  incus: 'Incus 7.3.0 (wharf verify)',
};

/** Whether a client of `view` can use `image` (and so is offered it). */
export function visibleIn(view: ClientView, image: Image): boolean {
  return view === 'full' || !(image.rootfs === null && image.type === 'virtual-machine');
}
export const productsPath = 'streams/v1/images.json';

export interface SimplestreamsItem {
  ftype: string;
  path: string;
  sha256: string;
  size: number;
  combined_type?: string;
  delta_base?: string;
  [combined: `combined_${string}`]: string | undefined;
}

export interface SimplestreamsVersion {
  items: Record<string, SimplestreamsItem>;
  label?: string;
}

export interface SimplestreamsProduct {
  aliases: string;
  arch: string;
  os: string;
  release: string;
  release_title: string;
  variant: string;
  requirements: Record<string, string>;
  lxd_requirements: Record<string, string>;
  versions: Record<string, SimplestreamsVersion>;
}

export interface ProductsDocument {
  content_id: 'images';
  datatype: 'image-downloads';
  format: 'products:1.0';
  updated: string;
  products: Record<string, SimplestreamsProduct>;
}

export interface IndexDocument {
  format: 'index:1.0';
  updated: string;
  index: Record<string, { datatype: 'image-downloads'; path: string; format: 'products:1.0'; updated: string; products: string[] }>;
}

/** Where a blob is served; content-addressed, so a path never names different bytes. */
export type ArtifactPath = (blob: BlobRef) => string;

/** The root ftype clients pair with a metadata item, per stored rootfs format. */
function rootFtype(blob: BlobRef): 'squashfs' | 'root.tar.xz' | 'disk-kvm.img' {
  if (blob.format.kind === 'squashfs') return 'squashfs';
  if (blob.format.kind === 'qcow2') return 'disk-kvm.img';
  return 'root.tar.xz'; // any tarball: clients detect the real compression by magic
}

const combinedField: Record<ReturnType<typeof rootFtype>, string> = {
  squashfs: 'combined_squashfs_sha256',
  'root.tar.xz': 'combined_rootxz_sha256',
  'disk-kvm.img': 'combined_disk-kvm-img_sha256',
};

const rootItemKey: Record<ReturnType<typeof rootFtype>, string> = {
  squashfs: 'root.squashfs',
  'root.tar.xz': 'root.tar.xz',
  'disk-kvm.img': 'disk.qcow2',
};

/**
 * One product version holds at most one metadata tarball with at most one rootfs of each ftype,
 * or a single unified tarball: any more and clients would pair files wrongly. Images that don't
 * fit are given their own version key, the serial with a suffix (which still sorts by date).
 */
interface VersionSlot {
  key: string;
  images: Image[];
}

function slotImages(images: Image[]): VersionSlot[] {
  const bySerial = new Map<string, VersionSlot[]>();
  const sorted = [...images].sort((a, b) => a.uploadedAt.localeCompare(b.uploadedAt) || a.fingerprint.localeCompare(b.fingerprint));
  for (const image of sorted) {
    const serial = serialOf(image);
    const slots = bySerial.get(serial) ?? [];
    bySerial.set(serial, slots);
    const fits = (slot: VersionSlot) => {
      const first = slot.images[0];
      if (!first || first.rootfs === null || image.rootfs === null) return false;
      if (first.metadata.sha256 !== image.metadata.sha256) return false;
      return slot.images.every((other) => other.rootfs && rootFtype(other.rootfs) !== rootFtype(image.rootfs!));
    };
    const slot = slots.find(fits);
    if (slot) slot.images.push(image);
    else slots.push({ key: slots.length === 0 ? serial : `${serial}-${slots.length}`, images: [image] });
  }
  return [...bySerial.values()].flat();
}

/** `listed`: the product's version keys in this document; a delta from any other is left out (clients skip it, and it names a version they cannot hold from here). */
function versionOf(slot: VersionSlot, artifactPath: ArtifactPath, listed: Set<string>): SimplestreamsVersion {
  const items: Record<string, SimplestreamsItem> = {};
  const first = slot.images[0]!;
  if (first.rootfs === null) {
    const unified = { path: artifactPath(first.metadata), sha256: first.metadata.sha256, size: first.metadata.size };
    // LXD has no way to mark a unified item as a VM, so it is only offered unified containers.
    if (first.type === 'container') items['lxd_combined.tar.gz'] = { ftype: 'lxd_combined.tar.gz', ...unified };
    items['incus_combined.tar.gz'] = {
      ftype: 'incus_combined.tar.gz',
      ...unified,
      ...(first.type === 'virtual-machine' ? { combined_type: 'virtual-machine' } : {}),
    };
  } else {
    const meta: SimplestreamsItem = {
      ftype: '',
      path: artifactPath(first.metadata),
      sha256: first.metadata.sha256,
      size: first.metadata.size,
    };
    for (const image of slot.images) {
      const ftype = rootFtype(image.rootfs!);
      meta[combinedField[ftype] as `combined_${string}`] = image.fingerprint;
      // Older clients read the tarball fingerprint from the generic field.
      if (ftype === 'root.tar.xz') meta.combined_sha256 = image.fingerprint;
      items[rootItemKey[ftype]] = {
        ftype,
        path: artifactPath(image.rootfs!),
        sha256: image.rootfs!.sha256,
        size: image.rootfs!.size,
      };
      // Incus reads VM deltas wrongly (protocols.md §1.8), so only squashfs deltas are offered; and
      // one per version, from the newest listed base: a client holding two listed bases applies
      // both deltas and fails (a mirrored upstream may carry several).
      const delta = image.deltas
        .filter((d) => d.ftype === `${ftype}.vcdiff` && ftype === 'squashfs' && listed.has(d.base))
        .sort((a, b) => (a.base < b.base ? 1 : a.base > b.base ? -1 : 0))[0];
      if (delta) items[`${delta.base}.vcdiff`] = { ftype: delta.ftype, path: artifactPath(delta), sha256: delta.sha256, size: delta.size, delta_base: delta.base };
    }
    items['lxd.tar.xz'] = { ...meta, ftype: 'lxd.tar.xz' };
    items['incus.tar.xz'] = { ...meta, ftype: 'incus.tar.xz' };
  }
  const label = first.properties.label;
  return label ? { items, label } : { items };
}

function requirementsOf(images: Image[]): Record<string, string> {
  const newest = images.reduce((a, b) => (serialOf(b) > serialOf(a) ? b : a));
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(newest.properties)) {
    if (k.startsWith('requirements.')) out[k.slice('requirements.'.length)] = v;
  }
  return out;
}

/** Root ftypes in the order clients prefer them when one version offers several. */
const preference = ['squashfs', 'root.tar.xz', 'disk-kvm.img'];
const rank = (image: Image) => (image.rootfs ? preference.indexOf(rootFtype(image.rootfs)) : preference.length);

/** The image of each type that a product alias resolves to: newest version key, then preferred ftype. */
function resolvedImages(slots: VersionSlot[]): Set<string> {
  const best = new Map<string, { key: string; image: Image }>();
  for (const slot of slots) {
    for (const image of slot.images) {
      const current = best.get(image.type);
      if (!current || slot.key > current.key || (slot.key === current.key && rank(image) < rank(current.image))) {
        best.set(image.type, { key: slot.key, image });
      }
    }
  }
  return new Set([...best.values()].map((b) => b.image.fingerprint));
}

interface PublishedProduct {
  key: string;
  product: Product;
  slots: VersionSlot[];
}

/**
 * Aliases set by hand name one image. In simplestreams an alias belongs to a product and resolves
 * to its newest version of each type, so an image with such an alias that is not the newest moves
 * to a product of its own (clients list every product's images, so it must not stay in both).
 * And since a client asked for an alias without a type takes the container first, a product
 * holding both types is published as one product per type once any of its images has a hand
 * alias: each carries the product's aliases, so `os/release --vm` still finds the VM, but a hand
 * alias then names its own image's type only (the VM key gets a `:virtual-machine` suffix).
 */
function publishedProducts(images: Image[], aliases: Alias[], releaseNames: ReleaseNames): PublishedProduct[] {
  const groups = new Map<string, { product: Product; images: Image[] }>();
  for (const image of images) {
    const product = productOf(image, releaseNames);
    const group = groups.get(product.key) ?? { product, images: [] };
    group.images.push(image);
    groups.set(product.key, group);
  }
  const aliasesOf = new Map<string, string[]>();
  for (const alias of [...aliases].sort((a, b) => a.name.localeCompare(b.name))) {
    aliasesOf.set(alias.fingerprint, [...(aliasesOf.get(alias.fingerprint) ?? []), alias.name]);
  }

  const out: PublishedProduct[] = [];
  const parts: [string, { product: Product; images: Image[] }][] = [];
  for (const [key, group] of groups) {
    const types = [...new Set(group.images.map((i) => i.type))].sort();
    if (types.length < 2 || !group.images.some((i) => aliasesOf.has(i.fingerprint))) {
      parts.push([key, group]);
      continue;
    }
    for (const type of types) parts.push([type === 'container' ? key : `${key}:${type}`, { product: group.product, images: group.images.filter((i) => i.type === type) }]);
  }
  for (const [key, group] of parts) {
    const resolved = resolvedImages(slotImages(group.images));
    const pinned = group.images.filter((i) => aliasesOf.has(i.fingerprint) && !resolved.has(i.fingerprint));
    const members = group.images.filter((i) => !pinned.includes(i));
    const extra = members.flatMap((i) => (resolved.has(i.fingerprint) ? (aliasesOf.get(i.fingerprint) ?? []) : []));
    out.push({ key, product: { ...group.product, aliases: [...group.product.aliases, ...extra] }, slots: slotImages(members) });
    for (const image of pinned) {
      out.push({ key: `${key}:${image.fingerprint}`, product: { ...group.product, aliases: aliasesOf.get(image.fingerprint)! }, slots: slotImages([image]) });
    }
  }
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

export interface RenderOptions {
  /** The client family rendered for (default: the full view). */
  view?: ClientView;
  releaseNames?: ReleaseNames;
  /** List private images too (a private view's index); public ones only by default. */
  includePrivate?: boolean;
}

export function buildProducts(images: Image[], aliases: Alias[], artifactPath: ArtifactPath, { view = 'full', releaseNames = defaultReleaseNames, includePrivate = false }: RenderOptions = {}): ProductsDocument {
  const products: Record<string, SimplestreamsProduct> = {};
  const visible = images.filter((image) => visibleIn(view, image) && (includePrivate || image.public));
  for (const { key, product, slots } of publishedProducts(visible, aliases, releaseNames)) {
    const versions: Record<string, SimplestreamsVersion> = {};
    const listed = new Set(slots.map((s) => s.key));
    for (const slot of slots) versions[slot.key] = versionOf(slot, artifactPath, listed);
    const requirements = requirementsOf(slots.flatMap((s) => s.images));
    products[key] = {
      aliases: [...new Set(product.aliases)].join(','),
      arch: product.arch,
      os: product.os,
      release: product.release,
      release_title: product.releaseTitle,
      variant: product.variant,
      requirements,
      // LXD 5.0 reads only lxd_requirements, Incus only requirements.
      lxd_requirements: requirements,
      versions,
    };
  }
  return { content_id: 'images', datatype: 'image-downloads', format: 'products:1.0', updated: lastChange(visible), products };
}

export function buildIndex(products: ProductsDocument): IndexDocument {
  return {
    format: 'index:1.0',
    updated: products.updated,
    index: {
      images: {
        datatype: 'image-downloads',
        path: productsPath,
        format: 'products:1.0',
        updated: products.updated,
        products: Object.keys(products.products).sort(),
      },
    },
  };
}

/** Derived from the content, so the same store always renders the same bytes (stable ETags). */
function lastChange(images: Image[]): string {
  const newest = images.reduce((max, i) => (i.uploadedAt > max ? i.uploadedAt : max), '1970-01-01T00:00:00.000Z');
  return new Date(newest).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
