/**
 * Retention per channel (`wharf channel set NAME --keep N`): a channel keeps the N newest versions
 * of each product it holds, and every version pinned in it (`image pin`); older ones leave the
 * channel, recorded in its history like any demotion. A version leaves the store only when
 * nothing holds it any more (no channel, no pin): then it is deleted, its files kept through the
 * grace period as any deleted image's. A channel only ever holds versions that passed into it, so
 * keeping the newest N never drops the last good one for newer builds that failed.
 */
import type { ChannelSetting } from '../domain/channel.ts';
import type { Image } from '../domain/image.ts';
import { productOf, serialOf } from '../domain/product.ts';
import type { Store } from './context.ts';
import { deleteImages, editImage } from './images.ts';

/** Who retention acts as in a channel's history. */
export const retentionActor = 'retention';

/** The images of `channel` that its `keep` lets go: beyond the N newest versions of their product, not pinned. */
export function beyondRetention(images: Image[], setting: ChannelSetting, releaseNames?: Store['releaseNames']): Image[] {
  if (setting.keep === null) return [];
  const keep = setting.keep;
  // Mirrors do their own retention.
  const members = images.filter((i) => i.channels.includes(setting.name) && i.mirror === null);
  const doomed: Image[] = [];
  for (const product of Map.groupBy(members, (i) => productOf(i, releaseNames).key).values()) {
    const versions = [...new Set(product.map(serialOf))].sort().reverse();
    const kept = new Set(versions.slice(0, Math.max(keep, 1)));
    doomed.push(...product.filter((i) => !kept.has(serialOf(i)) && !i.pinned.includes(setting.name)));
  }
  return doomed;
}

/**
 * Applies every channel's retention (or only `channels`'): what it lets go leaves the channel,
 * and what then nothing holds leaves the store. Returns what left each channel and what was deleted.
 */
export async function applyRetention(store: Store, channels?: string[]): Promise<{ demoted: { channel: string; fingerprint: string }[]; deleted: string[] }> {
  const settings = (await store.meta.listChannels()).filter((s) => s.keep !== null && (!channels || channels.includes(s.name)));
  const demoted: { channel: string; fingerprint: string }[] = [];
  const orphaned = new Set<string>();
  // Read once: leaving one channel changes no image's place in another.
  const images = settings.length ? await store.meta.listImages() : [];
  for (const setting of settings) {
    for (const image of beyondRetention(images, setting, store.releaseNames)) {
      const after = await editImage(store, image.fingerprint, (now) => ({ channels: now.channels.filter((c) => c !== setting.name) }), undefined, retentionActor);
      demoted.push({ channel: setting.name, fingerprint: image.fingerprint });
      if (after.channels.length === 0 && after.pinned.length === 0) orphaned.add(image.fingerprint);
    }
  }
  if (orphaned.size) await deleteImages(store, [...orphaned], retentionActor);
  if (demoted.length) store.log.info('channel retention applied', { demoted: demoted.length, deleted: orphaned.size });
  return { demoted, deleted: [...orphaned] };
}
