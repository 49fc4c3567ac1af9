/**
 * The catalogue people browse before they type `incus launch`: every public product (os,
 * release, architecture, variant, as images.linuxcontainers.org lists them) with its versions,
 * their images, fingerprints and files. Private images never appear. This document is what
 * `/catalogue/v1/products.json` serves and what the page (web/page.ts) is rendered from.
 */
import type { Alias, Image, ImageType } from './image.ts';
import type { ArtifactPath } from './simplestreams.ts';
import { describeFormat } from './formats.ts';
import { productOf, serialOf } from './product.ts';
import type { ReleaseNames } from './release-names.ts';
import type { ChannelChange } from './channel.ts';

export interface CatalogueFile {
  /** metadata and rootfs (or disk) of a split image; unified; delta (from an older version). */
  role: 'metadata' | 'rootfs' | 'disk' | 'unified' | 'delta';
  /** Where this server serves it (relative to its root). */
  path: string;
  sha256: string;
  size: number;
  format: string;
}

export interface CatalogueImage {
  fingerprint: string;
  type: ImageType;
  size: number;
  created_at: string;
  /** The channels (roots) it is published in. */
  channels: string[];
  /** Whether it came through the publishing pipeline having passed its tests (null: it did not come through the pipeline). */
  tested: boolean | null;
  files: CatalogueFile[];
}

export interface CatalogueVersion {
  serial: string;
  images: CatalogueImage[];
}

export interface CatalogueProduct {
  /** os:release:arch:variant (or image:FINGERPRINT for an image without os and release). */
  key: string;
  os: string;
  release: string;
  release_title: string;
  variant: string;
  /** As the distribution spells it (amd64), which the aliases use. */
  arch: string;
  description: string;
  /** Names `launch` accepts for the newest version (shortest first); none: use the fingerprint. */
  aliases: string[];
  types: ImageType[];
  /** The newest version's serial, build time (its newest image) and total size. */
  newest: { serial: string; created_at: string; size: number };
  /** Newest first. */
  versions: CatalogueVersion[];
}

export interface CatalogueDocument {
  format: 'wharf-catalogue:1.0';
  products: CatalogueProduct[];
}

function filesOf(image: Image, artifactPath: ArtifactPath): CatalogueFile[] {
  const file = (role: CatalogueFile['role'], blob: Image['metadata']): CatalogueFile => ({
    role,
    path: artifactPath(blob),
    sha256: blob.sha256,
    size: blob.size,
    format: describeFormat(blob.format),
  });
  if (!image.rootfs) return [file('unified', image.metadata)];
  return [file('metadata', image.metadata), file(image.type === 'virtual-machine' ? 'disk' : 'rootfs', image.rootfs), ...image.deltas.map((d) => file('delta', d))];
}

const byLength = (a: string, b: string) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);

/** A move of a catalogued image between channels, as the catalogue shows it (who made it stays private). */
export interface CatalogueChange {
  fingerprint: string;
  at: string;
  from: string[];
  to: string[];
}

/**
 * The channel history of a product's images as a public page may show it: newest first, only the
 * channels that are public roots (`shown`), and no change that moved nothing among those.
 */
export function publicHistory(changes: ChannelChange[], shown: Set<string>): CatalogueChange[] {
  const visible = (channels: string[]) => channels.filter((c) => shown.has(c));
  return changes
    .map((c) => ({ fingerprint: c.fingerprint, at: c.at, from: visible(c.from), to: visible(c.to) }))
    .filter((c) => JSON.stringify(c.from) !== JSON.stringify(c.to))
    .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
}

export function buildCatalogue(images: Image[], aliases: Alias[], artifactPath: ArtifactPath, releaseNames?: ReleaseNames): CatalogueDocument {
  const products = new Map<string, { product: ReturnType<typeof productOf>; images: Image[] }>();
  for (const image of images) {
    if (!image.public) continue;
    const product = productOf(image, releaseNames);
    const entry = products.get(product.key);
    if (entry) entry.images.push(image);
    else products.set(product.key, { product, images: [image] });
  }
  const handMade = Map.groupBy(aliases, (a) => a.fingerprint);

  const list: CatalogueProduct[] = [];
  for (const { product, images: members } of products.values()) {
    const versions = Map.groupBy(members, serialOf);
    const ordered = [...versions.entries()]
      .sort(([a], [b]) => (a < b ? 1 : a > b ? -1 : 0))
      .map(([serial, imgs]) => ({
        serial,
        images: imgs
          .sort((a, b) => (a.type < b.type ? -1 : 1))
          .map((i) => ({ fingerprint: i.fingerprint, type: i.type, size: i.size, created_at: i.createdAt, channels: [...i.channels], tested: i.stage ? i.stage.tested === true : null, files: filesOf(i, artifactPath) })),
      }));
    const newest = ordered[0]!;
    const newestImages = versions.get(newest.serial)!;
    const described = newestImages.find((i) => i.properties.description?.trim());
    list.push({
      key: product.key,
      os: product.os,
      release: product.release,
      release_title: product.releaseTitle,
      variant: product.variant,
      arch: product.arch,
      description: described?.properties.description?.trim() ?? newestImages[0]!.filename,
      aliases: [...new Set([...product.aliases, ...newestImages.flatMap((i) => (handMade.get(i.fingerprint) ?? []).map((a) => a.name))])].sort(byLength),
      types: [...new Set(members.map((i) => i.type))].sort(),
      newest: {
        serial: newest.serial,
        created_at: newest.images.map((i) => i.created_at).sort().at(-1)!,
        size: newest.images.reduce((n, i) => n + i.size, 0),
      },
      versions: ordered,
    });
  }
  // Releases in number order (debian 9 before 12), then variant and architecture.
  const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
  list.sort((a, b) => collator.compare(a.os, b.os) || collator.compare(a.release, b.release) || collator.compare(a.variant, b.variant) || collator.compare(a.arch, b.arch) || collator.compare(a.key, b.key));
  return { format: 'wharf-catalogue:1.0', products: list };
}
