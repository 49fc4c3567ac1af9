/**
 * KEY=VALUE filters on images, as `lxc image list` reads them: one rule for `wharf image list`,
 * `tree export` and the `--filter` of mirrors (which apply it to another server's images).
 * Values compare without regard to case; `architecture` matches any spelling of the same
 * architecture, or the image's own raw spelling.
 */
import { canonicalArchitecture } from './architecture.ts';

/** What a filter can look at: a stored image, or one listed by a remote index. */
export interface Filterable {
  fingerprint: string;
  /** Canonical (x86_64); the image's own spelling is properties.architecture. */
  architecture: string;
  type: string;
  /** Stored images only: remote ones have no visibility of their own. */
  public?: boolean;
  /** Stored images only: the channels it is published in. */
  channels?: string[];
  properties: Record<string, string>;
}

export function matchesProperty(image: Filterable, key: string, value: string): boolean {
  const want = value.toLowerCase();
  switch (key) {
    case 'architecture':
      return canonicalArchitecture(value) === image.architecture || image.properties.architecture?.toLowerCase() === want;
    case 'type':
    case 'fingerprint':
      return image[key].toLowerCase() === want;
    case 'public':
      if (image.public !== undefined) return String(image.public) === want;
      break;
    case 'channel':
      if (image.channels !== undefined) return image.channels.includes(want);
  }
  const own = image.properties[key] ?? image.properties[key.replace(/^properties\./, '')];
  return own !== undefined && own.toLowerCase() === want;
}
