/**
 * Products and versions, as images.linuxcontainers.org lays them out: every image is one version
 * (a serial such as 20261122_07:42) of a product os:release:architecture:variant, and the
 * product's aliases always follow its newest version.
 */
import { distroArchitecture, canonicalArchitecture } from './architecture.ts';
import type { Image } from './image.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import { defaultReleaseNames, withReleaseNames, type ReleaseNames } from './release-names.ts';

export interface Product {
  /** e.g. debian:12:amd64:default. */
  key: string;
  os: string;
  release: string;
  variant: string;
  /** Distribution spelling (amd64), as simplestreams `arch` wants it. */
  arch: string;
  releaseTitle: string;
  /** Aliases that name this product's newest version. */
  aliases: string[];
}

/** How many versions of each product to keep (`prune`, mirrors): a whole number, at least 1. */
export function checkKeep(keep: number): number {
  if (!Number.isInteger(keep) || keep < 1) throw new AppError(ErrorCodes.invalidArgument, `Keep must be a whole number of versions, at least 1 (got ${keep})`);
  return keep;
}

/** `YYYYMMDD_HH:MM` in UTC, the serial format of images.linuxcontainers.org. */
export function serialFromDate(iso: string): string {
  const d = new Date(iso);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}_${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
}

/**
 * The version key of an image. Clients skip a version whose key does not start with a
 * YYYYMMDD date, so a `serial` property of another shape falls back to the creation date.
 */
export function serialOf(image: Image): string {
  const serial = image.properties.serial;
  if (serial && /^\d{8}/.test(serial) && !Number.isNaN(Date.parse(`${serial.slice(0, 4)}-${serial.slice(4, 6)}-${serial.slice(6, 8)}`))) {
    return serial;
  }
  return serialFromDate(image.createdAt);
}

/** The raw architecture name to publish: the image's own spelling when it means the same arch. */
export function publishedArch(image: Pick<Image, 'properties' | 'architecture'>): string {
  const own = image.properties.architecture;
  if (own && canonicalArchitecture(own) === image.architecture) return own;
  return distroArchitecture(image.architecture);
}

/** The key of the product an image (or one about to be, from its metadata) belongs to. */
export function productKeyOf(image: Pick<Image, 'properties' | 'architecture' | 'fingerprint'>): string {
  const os = image.properties.os?.trim() ?? '';
  const release = image.properties.release?.trim() ?? '';
  if (!os || !release) return `image:${image.fingerprint}`;
  return [os, release, publishedArch(image), image.properties.variant?.trim() || 'default'].map(keyPart).join(':');
}

export function productOf(image: Image, releaseNames: ReleaseNames = defaultReleaseNames): Product {
  const os = image.properties.os?.trim() ?? '';
  const release = image.properties.release?.trim() ?? '';
  const variant = image.properties.variant?.trim() || 'default';
  const arch = publishedArch(image);
  const releaseTitle = image.properties.release_title?.trim() || release;
  if (!os || !release) {
    // Without os and release there is nothing to group by: the image is a product of its own.
    return { key: `image:${image.fingerprint}`, os, release, variant, arch, releaseTitle, aliases: [] };
  }
  const key = productKeyOf(image);
  // Mirrored images keep their upstream's aliases; either way a release answers to all its names.
  const own = image.productAliases.length ? image.productAliases : productAliases(os, release, variant);
  const aliases = withReleaseNames(own, aliasPart(os), aliasPart(release), releaseNames);
  return { key, os, release, variant, arch, releaseTitle, aliases };
}

/** The alias set images.linuxcontainers.org publishes (lxd-imagebuilder CreateAliases). */
export function productAliases(os: string, release: string, variant: string): string[] {
  const o = aliasPart(os);
  const r = aliasPart(release);
  const v = aliasPart(variant);
  const aliases = [`${o}/${r}/${v}`];
  if (v === 'default') aliases.push(`${o}/${r}`);
  if (r === 'current') {
    aliases.push(`${o}/${v}`);
    if (v === 'default') aliases.push(o);
  }
  return aliases;
}

const keyPart = (s: string) => s.toLowerCase().replace(/[:\s]+/g, '-');
// Aliases are split on "," by clients and live in URL paths: keep them to one plain token each.
const aliasPart = (s: string) => s.toLowerCase().replace(/[,\s/]+/g, '-');

const rootRank = (image: Image) => (image.rootfs === null ? 3 : image.rootfs.format.kind === 'squashfs' ? 0 : image.rootfs.format.kind === 'tarball' ? 1 : 2);

/**
 * The image a product alias (`debian/12`, or `debian/12/amd64` with the published architecture)
 * names among `images`, as a simplestreams client would pick it: a container before a VM (what a
 * client asking without a type gets first), the preferred architecture, the newest serial, then
 * squashfs before a tarball. Over the LXD API an alias names one image, so this is that one.
 */
export function productAliasTarget(images: Image[], name: string, preferredArch: string, releaseNames: ReleaseNames = defaultReleaseNames): Image | undefined {
  const named = images.filter((image) => {
    const product = productOf(image, releaseNames);
    const arch = publishedArch(image);
    return product.aliases.some((alias) => alias === name || `${alias}/${arch}` === name);
  });
  const score = (image: Image) => [image.type === 'container' ? 0 : 1, image.architecture === preferredArch ? 0 : 1] as const;
  return named.sort((a, b) => {
    const [ta, aa] = score(a);
    const [tb, ab] = score(b);
    return ta - tb || aa - ab || serialOf(b).localeCompare(serialOf(a)) || rootRank(a) - rootRank(b) || b.uploadedAt.localeCompare(a.uploadedAt);
  })[0];
}
