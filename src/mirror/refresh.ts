/**
 * Auto-update, as LXD does it: an image copied by alias with --auto-update follows that alias on
 * its source server. When the alias names a newer image, that one is downloaded and verified,
 * the old image's aliases move to it, and the old image is deleted (its files stay downloadable
 * for the grace period).
 */
import type { Image } from '../domain/image.ts';
import type { RemoteRecord } from '../meta/store.ts';
import type { Store } from '../core/context.ts';
import { resolveImage } from '../core/resolve.ts';
import { deleteImages } from '../core/images.ts';
import { loadCatalogue, resolveRemoteImage } from '../remote/simplestreams.ts';
import { lxdAliasTarget } from '../remote/lxd.ts';
import { importLxdImage, importRemoteImage } from './copy.ts';

export interface RefreshResult {
  fingerprint: string;
  updatedTo?: string;
  error?: string;
}

export async function refreshImages(store: Store, refs: string[] = [], signal?: AbortSignal): Promise<RefreshResult[]> {
  const images = refs.length ? await Promise.all(refs.map((r) => resolveImage(store, r))) : await store.meta.listImages();
  const results: RefreshResult[] = [];
  for (const image of images.filter((i) => i.autoUpdate && i.updateSource?.alias)) {
    try {
      const next = await refreshOne(store, image, signal);
      results.push({ fingerprint: image.fingerprint, ...(next ? { updatedTo: next } : {}) });
    } catch (err) {
      store.log.warn('auto-update failed', { fingerprint: image.fingerprint, err });
      results.push({ fingerprint: image.fingerprint, error: (err as Error).message });
    }
  }
  return results;
}

async function refreshOne(store: Store, image: Image, signal?: AbortSignal): Promise<string | undefined> {
  const source = image.updateSource!;
  const remote: RemoteRecord = { name: '', url: source.server, protocol: source.protocol === 'simplestreams' ? 'simplestreams' : 'lxd', public: true, certificate: source.certificate, gpgKey: source.gpgKey ?? '' };
  let fresh: Image;
  if (remote.protocol === 'simplestreams') {
    const catalogue = await loadCatalogue(remote.url, { certificate: remote.certificate || undefined, signal }, remote.gpgKey || undefined);
    const latest = resolveRemoteImage(catalogue, source.alias, { type: image.type, architecture: image.architecture });
    if (latest.fingerprint === image.fingerprint) return undefined;
    fresh =
      (await store.meta.getImage(latest.fingerprint)) ??
      (await importRemoteImage(store, remote, latest, { aliases: [], public: image.public, autoUpdate: true, updateAlias: source.alias, ...(signal ? { signal } : {}) }));
  } else {
    const probe = await lxdAliasTarget(remote, source.alias, signal);
    if (probe === image.fingerprint) return undefined;
    fresh =
      (await store.meta.getImage(probe)) ??
      (await importLxdImage(store, { server: remote.url, certificate: remote.certificate || undefined, fingerprint: probe, alias: source.alias }, {
        aliases: [],
        public: image.public,
        autoUpdate: true,
        limit: Number.MAX_SAFE_INTEGER,
        ...(signal ? { signal } : {}),
      }));
  }
  // Move the aliases, then retire the old image.
  await store.meta.moveAliases(image.fingerprint, fresh.fingerprint);
  await deleteImages(store, [image.fingerprint], 'auto-update');
  store.log.info('image auto-updated', { from: image.fingerprint, to: fresh.fingerprint });
  return fresh.fingerprint;
}
