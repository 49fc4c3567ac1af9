/**
 * Images as the LXD/Incus REST API shows them (shared/api/image.go). Used by `image show`,
 * JSON/YAML listings and the REST view, so every view of an image agrees.
 */
import { aliasesOf, type Alias, type Image } from './image.ts';

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
            server: image.updateSource.server,
            image_type: image.updateSource.imageType,
          },
        }
      : {}),
    uploaded_at: goTime(image.uploadedAt),
  };
}
