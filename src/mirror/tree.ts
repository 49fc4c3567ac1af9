/**
 * Air-gapped transport: `tree export` writes a static simplestreams tree (index, products file,
 * files at the paths the index names) that any web server can serve; `tree import` loads one,
 * verifying every file against the index, as a mirror would.
 */
import { checkChannel, defaultChannel } from '../domain/channel.ts';
import { ensureDirectory } from '../directories.ts';
import { createWriteStream } from 'node:fs';
import { rename, rm, writeFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Store } from '../core/context.ts';
import { listImages } from '../core/images.ts';
import { artifactPath } from '../core/publish.ts';
import { buildIndex, buildProducts, indexPath, productsPath, visibleIn, type ClientView } from '../domain/simplestreams.ts';
import { loadCatalogue } from '../remote/simplestreams.ts';
import type { Image } from '../domain/image.ts';
import { importRemoteImage } from './copy.ts';

/**
 * A static tree answers every client the same, unlike the server (see ClientView). `portable`
 * renders the view every client reads correctly (no unified VM images); the default keeps every
 * image, for transport to another wharf and for current clients.
 */
export async function exportTree(store: Store, dir: string, filters: string[] = [], options: { portable?: boolean; channel?: string } = {}): Promise<{ images: number; files: number; misread: number }> {
  const view: ClientView = options.portable ? 'incus-before-7.1' : 'full';
  // One channel's root, as the server serves it: the default channel's unless another is named.
  const channel = checkChannel(options.channel ?? defaultChannel);
  const all = (await listImages(store, filters)).filter((i) => i.public && i.channels.includes(channel));
  const images = all.filter((i) => visibleIn(view, i));
  const misread = images.filter((i) => !visibleIn('incus-before-7.1', i)).length;
  const aliases = (await store.meta.listAliases()).filter((a) => images.some((i) => i.fingerprint === a.fingerprint));
  const products = buildProducts(images, aliases, artifactPath, { view, releaseNames: store.releaseNames });
  const blobs = new Map(images.flatMap((i) => [i.metadata, ...(i.rootfs ? [i.rootfs] : []), ...i.deltas]).map((b) => [b.sha256, b]));
  for (const blob of blobs.values()) {
    const target = join(dir, artifactPath(blob));
    // Content-addressed: a file already there with the right size is the same file.
    if ((await stat(target).catch(() => undefined))?.size === blob.size) continue;
    await ensureDirectory(dirname(target));
    const temp = `${target}.part`;
    try {
      await pipeline(await store.blobs.openRead(blob.sha256), createWriteStream(temp));
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }
  // The index goes last, so a reader never sees it name a file that is not there yet.
  for (const [path, doc] of [
    [productsPath, products],
    [indexPath, buildIndex(products)],
  ] as const) {
    await ensureDirectory(dirname(join(dir, path)));
    await writeFile(join(dir, `${path}.part`), JSON.stringify(doc));
    await rename(join(dir, `${path}.part`), join(dir, path));
  }
  return { images: images.length, files: blobs.size, misread };
}

export async function importTree(store: Store, dir: string, signal?: AbortSignal): Promise<{ imported: Image[]; skipped: number }> {
  const catalogue = await loadCatalogue(dir, signal ? { signal } : {});
  const remote = { name: '', url: dir, protocol: 'simplestreams' as const, public: true, certificate: '', gpgKey: '' };
  const imported: Image[] = [];
  let skipped = 0;
  for (const image of catalogue) {
    if (await store.meta.getImage(image.fingerprint)) {
      skipped++;
      continue;
    }
    imported.push(
      await importRemoteImage(store, remote, image, {
        aliases: [],
        public: true,
        autoUpdate: false,
        updateAlias: '',
        productAliases: image.aliases,
        ...(signal ? { signal } : {}),
      }),
    );
  }
  return { imported, skipped };
}
