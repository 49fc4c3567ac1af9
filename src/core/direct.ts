/**
 * Direct-URL import (`lxc image import https://HOST/direct/ALIAS`): the daemon asks with HEAD which
 * file to fetch and which sha256 it must have. Only unified images can be imported this way.
 * ALIAS is a product alias (debian/12) or a hand-made one; the client's architectures, in its
 * order of preference, pick among the products that answer to it.
 */
import { canonicalArchitecture } from '../domain/architecture.ts';
import { productOf, serialOf } from '../domain/product.ts';
import type { Image } from '../domain/image.ts';
import { notFound } from '../errors.ts';
import type { ImageCatalog } from '../meta/store.ts';
import type { ReleaseNames } from '../domain/release-names.ts';
import { defaultChannel } from '../domain/channel.ts';

/** `channel`: the root the URL is under (/CHANNEL/direct/ALIAS); its own newest version answers. */
export async function directImage(store: { meta: ImageCatalog; releaseNames?: ReleaseNames }, alias: string, clientArchitectures: string[], channel = defaultChannel): Promise<Image> {
  const [images, aliases] = await Promise.all([store.meta.listImages(), store.meta.listAliases()]);
  const explicit = new Set(aliases.filter((a) => a.name === alias).map((a) => a.fingerprint));
  const candidates = images.filter(
    (i) => i.public && i.rootfs === null && i.channels.includes(channel) && (explicit.has(i.fingerprint) || productOf(i, store.releaseNames).aliases.includes(alias)),
  );
  if (candidates.length === 0) throw notFound(`No unified image answers to "${alias}" (split images cannot be imported by URL)`);
  const wanted = clientArchitectures.map((a) => canonicalArchitecture(a)).filter((a): a is string => a !== undefined);
  for (const arch of wanted.length ? wanted : [...new Set(candidates.map((c) => c.architecture))]) {
    const newest = candidates
      .filter((c) => c.architecture === arch)
      .sort((a, b) => serialOf(b).localeCompare(serialOf(a)) || b.uploadedAt.localeCompare(a.uploadedAt))[0];
    if (newest) return newest;
  }
  throw notFound(`"${alias}" has no image for ${clientArchitectures.join(', ')}`);
}
