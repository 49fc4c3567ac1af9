/**
 * Images as the LXD/Incus REST API shows them (shared/api/image.go). Used by `image show`,
 * JSON/YAML listings and the REST view, so every view of an image agrees.
 */
import { createHash } from 'node:crypto';
import { aliasesOf, type Alias, type Image } from './image.ts';
import { redactSecrets } from './redact.ts';

export const zeroTime = '0001-01-01T00:00:00Z';

export interface ApiImage {
  aliases: { name: string; description: string }[];
  architecture: string;
  auto_update: boolean;
  cached: boolean;
  created_at: string;
  expires_at: string;
  filename: string;
  fingerprint: string;
  last_used_at: string;
  profiles: string[];
  properties: Record<string, string>;
  /** wharf has no projects: every image is in the one LXD and Incus call "default". */
  project: string;
  public: boolean;
  size: number;
  type: string;
  update_source?: { alias: string; certificate: string; protocol: string; server: string; image_type: string };
  uploaded_at: string;
}

/** Times as Go's encoding/json writes them (RFC 3339, fraction without trailing zeros). */
export function goTime(iso: string): string {
  return iso.replace(/\.(\d*?)0*Z$/, (_m, digits: string) => (digits ? `.${digits}Z` : 'Z'));
}

export function toApiImage(image: Image, aliases: Alias[]): ApiImage {
  return {
    aliases: aliasesOf(aliases, image.fingerprint).map((a) => ({ name: a.name, description: a.description })),
    architecture: image.architecture,
    auto_update: image.autoUpdate,
    cached: image.cached,
    created_at: goTime(image.createdAt),
    expires_at: image.expiresAt ? goTime(image.expiresAt) : zeroTime,
    filename: image.filename,
    fingerprint: image.fingerprint,
    last_used_at: image.lastUsedAt ? goTime(image.lastUsedAt) : zeroTime,
    profiles: ['default'],
    project: 'default',
    properties: image.properties,
    public: image.public,
    size: image.size,
    type: image.type,
    ...(image.updateSource
      ? {
          update_source: {
            alias: image.updateSource.alias,
            certificate: image.updateSource.certificate,
            protocol: image.updateSource.protocol,
            // Shown to whoever sees the image: never the credentials wharf updates it with.
            server: redactSecrets(image.updateSource.server),
            image_type: image.updateSource.imageType,
          },
        }
      : {}),
    uploaded_at: goTime(image.uploadedAt),
  };
}

/** An alias as the REST API shows it (shared/api/image.go ImageAliasesEntry, in field order). */
export function toApiAlias(alias: Alias) {
  return { description: alias.description, target: alias.fingerprint, name: alias.name, type: alias.type };
}

/**
 * JSON as Go's encoding/json writes it, which is what the daemons hash for ETags: <, >, &, U+2028
 * and U+2029 escaped, \b and \f as \u escapes, and the trailing newline of json.Encoder.
 */
export function goJson(json: string): string {
  return json.replace(/\\(.)/g, (m, c: string) => (c === 'b' ? '\\u0008' : c === 'f' ? '\\u000c' : m)).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) + '\n';
}

/** A Go map[string]string: keys in byte order (a JS object would put "10" before "9"'s peers). */
const goMapJson = (m: Record<string, string>) =>
  `{${Object.keys(m)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((k) => `${JSON.stringify(k)}:${JSON.stringify(m[k])}`)
    .join(',')}}`;

const etagOf = (json: string) => `"${createHash('sha256').update(goJson(json)).digest('hex')}"`;

/** The ETag incusd and LXD give an image: what an edit may change (public, auto_update, properties). */
export const imageEtag = (image: Image) => etagOf(`[${image.public},${image.autoUpdate},${goMapJson(image.properties)}]`);

/** The ETag of an alias: the entry as shown, in struct field order. */
export const aliasEtag = (alias: Alias) => etagOf(JSON.stringify(toApiAlias(alias)));
