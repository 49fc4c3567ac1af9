/**
 * Channels: several simplestreams roots served from one store. An image is published in a set of
 * channels; `default` is the server's root index (/streams/v1/), every other channel a root of
 * its own (/NAME/streams/v1/, which real lxc and incus take as a remote URL with a path).
 */
import { AppError, ErrorCodes } from '../errors.ts';
import type { Gate } from './pipeline.ts';

/** The channel of the server's root index, and of every image unless said otherwise. */
export const defaultChannel = 'default';

/** First path segments that are the server's own: a channel may not be named like them. */
const reserved = new Set(['1.0', 'streams', 'files', 'direct', 'catalogue', 'healthz', 'readyz', 'metrics', 'favicon.ico', 'robots.txt', 'v2', 'views']);

/**
 * The channel builders push into (push tokens, certificates trusted for it): its images are
 * private, each with a stage (domain/pipeline.ts), until a gate promotes them.
 */
export const stagingChannel = 'staging';

/**
 * A channel name is a path segment of every URL under its root: lowercase letters, digits and
 * dashes, starting with a letter, at most 63 characters, none of the server's own.
 */
export const isChannelName = (name: string) => /^[a-z][a-z0-9-]{0,62}$/.test(name) && !reserved.has(name);

export function checkChannel(name: string): string {
  if (!isChannelName(name)) {
    throw new AppError(ErrorCodes.invalidArgument, `"${name.slice(0, 80)}" is not a channel name`, {
      hint: 'Use lowercase letters, digits and dashes, starting with a letter (such as daily or stable).',
    });
  }
  return name;
}

/** A channel set as the store keeps it: checked, sorted, no repeats. */
export function channelSet(names: Iterable<string>): string[] {
  return [...new Set([...names].map(checkChannel))].sort();
}

/**
 * A channel's settings: `keep`, the newest versions per product its retention keeps (null: all);
 * `gate`, how it takes staged images (domain/pipeline.ts `gateOf`; null: the default).
 */
export interface ChannelSetting {
  name: string;
  keep: number | null;
  gate: Gate | null;
}

/** A change of an image's channels (a promotion, a demotion), as the catalogue records it. */
export interface ChannelChange {
  fingerprint: string;
  /** The image's revision once changed: the changes of one image are ordered by it. */
  revision: number;
  from: string[];
  to: string[];
  /** Who made it: a CLI user (user@host) or an API client's certificate name. */
  actor: string;
  /** When, by the store's clock (ISO 8601). */
  at: string;
}

/** The change an edit makes to an image's channels (`before` them), if any: what the catalogue records. */
export function channelChange(before: string[], image: { fingerprint: string; revision: number; channels: string[] }, actor: string, at: string): ChannelChange | undefined {
  if (JSON.stringify(before) === JSON.stringify(image.channels)) return undefined;
  return { fingerprint: image.fingerprint, revision: image.revision + 1, from: [...before], to: [...image.channels], actor, at };
}

/** The path of a channel's root, with its trailing slash: '' for the default channel, 'NAME/' for another. */
export const channelRoot = (channel: string) => (channel === defaultChannel ? '' : `${channel}/`);
