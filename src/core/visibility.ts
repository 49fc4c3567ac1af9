/**
 * What a caller of the LXD API may see. Trusted clients see everything; others see public images,
 * and a private image only with a valid one-time secret. Anything hidden gets the very answer a
 * missing image gets from LXD and incusd ("Image not found"), so a private image's existence does
 * not leak: stricter than incusd 6.0, whose answer for a private image names its full fingerprint.
 */
import { notFound } from '../errors.ts';
import type { Alias, Image } from '../domain/image.ts';
import { isFingerprintPrefix } from '../domain/fingerprint.ts';
import { hostArchitecture } from '../domain/architecture.ts';
import { productAliasTarget } from '../domain/product.ts';
import { defaultChannel } from '../domain/channel.ts';
import type { ImageCatalog } from '../meta/store.ts';
import type { ReleaseNames } from '../domain/release-names.ts';
import type { ImageSecrets } from './secrets.ts';
import { listImages, imageWithAliases, type ImageWithAliases } from './images.ts';

export interface Viewer {
  trusted: boolean;
  secret?: string | undefined;
  /** A trusted certificate restricted to these channels: the private images of others stay hidden. */
  channels?: string[] | undefined;
  /** The trusted certificate's name: who made a change, in the event log. */
  name?: string | undefined;
}

/** Whether the viewer sees `image` when it is private: trusted, with a channel of the image's if restricted. */
export function seesPrivate(viewer: Viewer, image: Pick<Image, 'channels'>): boolean {
  return viewer.trusted && (viewer.channels === undefined || image.channels.some((c) => viewer.channels!.includes(c)));
}

export async function canSee(viewer: Viewer, image: Image, secrets: ImageSecrets): Promise<boolean> {
  return image.public || seesPrivate(viewer, image) || (await secrets.allows(viewer.secret, image.fingerprint));
}

export async function visibleImages(store: { meta: ImageCatalog }, viewer: Viewer): Promise<ImageWithAliases[]> {
  const all = await listImages(store);
  return all.filter((i) => i.public || seesPrivate(viewer, i));
}

/** A full fingerprint or a unique prefix of one the viewer may see. */
export async function visibleImage(store: { meta: ImageCatalog }, viewer: Viewer, secrets: ImageSecrets, asked: string): Promise<ImageWithAliases> {
  const missing = () => notFound('Image not found');
  // Fingerprints are lowercase hex; the daemons match a prefix in any case.
  const prefix = asked.toLowerCase();
  if (!isFingerprintPrefix(prefix)) throw missing();
  const found = await store.meta.findImages(prefix);
  const seen = await Promise.all(found.map((i) => canSee(viewer, i, secrets)));
  const matches = found.filter((_, i) => seen[i]);
  if (matches.length !== 1) throw missing();
  return imageWithAliases(store, matches[0]!);
}

/**
 * An alias set by hand, else a product alias (`debian/12`) of the images the viewer may see in
 * its channels: they resolve over simplestreams, so `incus launch wharf-api:debian/12` must find
 * the image the root index (the default channel) names, and a certificate restricted to channels
 * the newest of its own channels.
 */
export async function visibleAlias(store: { meta: ImageCatalog; releaseNames?: ReleaseNames }, viewer: Viewer, name: string): Promise<Alias> {
  const alias = await store.meta.getAlias(name);
  if (!alias) {
    const channels = viewer.channels ?? [defaultChannel];
    const candidates = (await visibleImages(store, viewer)).filter((i) => i.channels.some((c) => channels.includes(c)));
    const target = productAliasTarget(candidates, name, hostArchitecture(), store.releaseNames);
    if (!target) throw notFound('Image alias not found');
    return { name, fingerprint: target.fingerprint, description: '', type: target.type };
  }
  if (!viewer.trusted || viewer.channels) {
    const image = await store.meta.getImage(alias.fingerprint);
    if (!image || (!image.public && !seesPrivate(viewer, image))) throw notFound('Image alias not found');
  }
  return alias;
}
