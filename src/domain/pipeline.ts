/**
 * The publishing pipeline's rules (issue 26): the stage of an image builders pushed into the
 * staging channel, the gate of a channel, which staged images a gate may promote, and the events
 * the catalogue's writes make (what webhooks are sent). Pure: the catalogue drivers call
 * `imageEvents` inside the write that changes the image, so an event is recorded exactly when its
 * change is; pipeline/stage.ts and pipeline/webhooks.ts act on them.
 */
import type { Image } from './image.ts';
import { defaultChannel, stagingChannel } from './channel.ts';
import { productKeyOf, serialOf } from './product.ts';

/**
 * Where a staged image is: `uploaded` (waiting for its tests), `testing` (a process runs them),
 * `passed` or `failed` (every hook's last attempt), `promoted` (out of staging, published) or
 * `rejected` (by an operator; stays stored until pruned).
 */
export const stageStates = ['uploaded', 'testing', 'passed', 'failed', 'promoted', 'rejected'] as const;
export type StageState = (typeof stageStates)[number];

export interface Stage {
  state: StageState;
  /** When it entered this state (ISO 8601): a `testing` stage older than its hooks can take was left by a process that died. */
  at: string;
  /** `promoted` only: whether it had passed its tests then (false: an operator's --force, or no hooks were configured). */
  tested?: boolean;
}

/**
 * How a channel takes staged images: `auto` promotes a build once every test hook passed on each
 * of its architectures; `manual` waits for `wharf image promote`. Unset: `auto` for the default
 * channel once test hooks are configured, `manual` otherwise.
 */
export type Gate = 'auto' | 'manual';

export function gateOf(channel: string, setting: Gate | null | undefined, hooksConfigured: boolean): Gate {
  if (setting) return setting;
  return channel === defaultChannel && hooksConfigured ? 'auto' : 'manual';
}

/**
 * A build: the images of one product version on every architecture (and of both types), which
 * pass together or are not promoted at all.
 */
export const buildKey = (image: Image) => JSON.stringify([...familyOf(image), serialOf(image)]);

/** A product family: a build without its version (os, release, variant). */
const familyOf = (image: Image) => [image.properties.os ?? '', image.properties.release ?? '', image.properties.variant ?? 'default'];
export const familyKey = (image: Image) => JSON.stringify(familyOf(image));

/** An image's place in a build: its architecture and type. */
const flavour = (image: Image) => `${image.architecture}/${image.type}`;

/**
 * Which of a build's staged images a gate may promote now into a channel: all of them when every
 * one passed (without test hooks: when every one is uploaded) and the build is complete, none
 * while one is still to test or being tested, or failed (its architectures go together).
 * Complete: it has every architecture and type the channel's newest version of the product
 * family has (`published`: the channel's images of the same os, release and variant), or its
 * last upload is `waitMs` old (a new family, or an architecture dropped).
 */
export function promotableBuild(build: Image[], published: Image[], hooksConfigured: boolean, waitMs: number, now = Date.now()): Image[] {
  const staged = build.filter((i) => i.stage && i.stage.state !== 'rejected' && i.stage.state !== 'promoted');
  const ready = hooksConfigured ? 'passed' : 'uploaded';
  if (!staged.length || !staged.every((i) => i.stage!.state === ready)) return [];
  const newest = published.map(serialOf).sort().at(-1);
  const expected = new Set(published.filter((i) => serialOf(i) === newest).map(flavour));
  const have = new Set(staged.map(flavour));
  if (expected.size && [...expected].every((f) => have.has(f))) return staged;
  const lastUpload = Math.max(...staged.map((i) => Date.parse(i.uploadedAt)));
  return now - lastUpload >= waitMs ? staged : [];
}

export const eventTypes = ['image.uploaded', 'test.passed', 'test.failed', 'image.promoted', 'image.demoted', 'image.pruned'] as const;
export type EventType = (typeof eventTypes)[number];

/** What an event says about its image, as it was then (the image may be gone by delivery). */
export interface EventImage {
  fingerprint: string;
  type: Image['type'];
  architecture: string;
  /** os:release:arch:variant (productKeyOf). */
  product: string;
  /** Its serial (serialOf). */
  version: string;
  /** The image's channels after the change. */
  channels: string[];
  /** sha256 of its files: metadata (or the unified tarball) and rootfs. */
  files: { metadata: string; rootfs: string | null };
}

export interface PipelineEvent {
  /** The event log's order: one write's events are consecutive, and a later write's come after. */
  seq: number;
  type: EventType;
  at: string;
  /** Who made the change: a CLI user (user@host), a certificate's or a token's name, or `wharf` for the gates. */
  actor: string;
  /** The channel moved into or out of (promoted, demoted); the image's first channel otherwise. */
  channel: string | null;
  image: EventImage;
}

export type NewEvent = Omit<PipelineEvent, 'seq'>;

function eventImage(image: Image): EventImage {
  return {
    fingerprint: image.fingerprint,
    type: image.type,
    architecture: image.architecture,
    product: productKeyOf(image),
    version: serialOf(image),
    channels: [...image.channels],
    files: { metadata: image.metadata.sha256, rootfs: image.rootfs?.sha256 ?? null },
  };
}

/**
 * The events of one change to one image: its insert (`before` undefined), an edit, or its deletion
 * (`after` undefined). An edit's stage moving to passed or failed is a test event; every channel
 * it enters or leaves, a promotion or demotion.
 */
export function imageEvents(before: Image | undefined, after: Image | undefined, actor: string, at: string): NewEvent[] {
  const event = (type: EventType, image: Image, channel: string | null): NewEvent => ({ type, at, actor, channel, image: eventImage(image) });
  if (!before) return after ? [event('image.uploaded', after, after.channels[0] ?? null)] : [];
  if (!after) return [event('image.pruned', before, before.channels[0] ?? null)];
  const events: NewEvent[] = [];
  const state = after.stage?.state;
  if (state !== before.stage?.state && (state === 'passed' || state === 'failed')) events.push(event(state === 'passed' ? 'test.passed' : 'test.failed', after, after.channels[0] ?? null));
  for (const channel of after.channels) if (!before.channels.includes(channel)) events.push(event('image.promoted', after, channel));
  // Leaving staging by promotion or rejection is that move, not a demotion.
  const leftStaging = state !== before.stage?.state && (state === 'promoted' || state === 'rejected');
  for (const channel of before.channels) {
    if (!after.channels.includes(channel) && !(leftStaging && channel === stagingChannel)) events.push(event('image.demoted', after, channel));
  }
  return events;
}
