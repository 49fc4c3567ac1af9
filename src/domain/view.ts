/**
 * Private views: a simplestreams root whose selection is one channel and property filters, open
 * to the holders of its tokens, private images included (how a tenant gets images nobody else
 * sees). Simplestreams clients send no certificate, so the token travels in the remote URL's path:
 * `https://HOST/views/NAME/TOKEN`, which lxc and incus keep as given.
 *
 * The clients resolve every item path against that URL (path.Join, which also resolves `..`) and
 * fetch artifacts over plain HTTP first, following redirects to mirrors: so no artifact URL may
 * carry the token. Item paths climb out of it: a public file is `../../../files/SHA.EXT` (the
 * server's own /files/, which mirrors and steering serve), a private one
 * `../files/ID.MAC/SHA.EXT`, a capability that opens that one file to whoever holds it, while the
 * token that handed it out lives, and for the grace period after it was revoked or expired.
 *
 * Pure: the store keeps views and tokens (meta/store.ts `ViewStore`), the HTTP layer only asks.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { formatExtension } from './formats.ts';
import { matchesProperty, type Filterable } from './property-filter.ts';
import type { BlobRef } from './image.ts';
import { AppError, ErrorCodes } from '../errors.ts';

/** The first path segment of every view's URLs. */
export const viewsSegment = 'views';

export interface View {
  name: string;
  /** The channel it selects from. */
  channel: string;
  /** KEY=VALUE filters (property-filter.ts), all of which an image must match. */
  filters: Record<string, string>;
  createdAt: string;
}

export interface ViewToken {
  /** 12 hex digits: how the token is listed and revoked, and named in logs. Not a secret. */
  id: string;
  view: string;
  /** sha256 of the secret, lowercase hex: the secret itself is never stored. */
  hash: string;
  description: string;
  createdAt: string;
  /** Null: it does not expire. */
  expiresAt: string | null;
  /** When it was revoked, by the store's clock; null while it is not. */
  revokedAt: string | null;
}

/** A view name is a path segment of its URLs: lowercase letters, digits and dashes, starting with a letter. */
export function checkViewName(name: string): string {
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) {
    throw new AppError(ErrorCodes.invalidArgument, `"${name.slice(0, 80)}" is not a view name`, {
      hint: 'Use lowercase letters, digits and dashes, starting with a letter (such as acme).',
    });
  }
  return name;
}

/** Whether the view shows `image`: in its channel and matching every filter, public or not. */
export function viewSelects(view: Pick<View, 'channel' | 'filters'>, image: Filterable & { channels: string[] }): boolean {
  return image.channels.includes(view.channel) && Object.entries(view.filters).every(([key, value]) => matchesProperty(image, key, value));
}

// A token is `wvt_ID_SECRET`: a prefix anyone (and any log scrubber) recognizes, the id that names
// it, and 256 random bits (domain/redact.ts takes the secret out of every log line and error).
const tokenPattern = /^wvt_([0-9a-f]{12})_([0-9a-f]{64})$/;

export const formatToken = (id: string, secret: string) => `wvt_${id}_${secret}`;

export function parseToken(token: string): { id: string; secret: string } | undefined {
  const m = tokenPattern.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

export const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('hex');

/** Does `secret` belong to `token`? Compared in constant time, on the hashes. */
export function secretMatches(token: Pick<ViewToken, 'hash'>, secret: string): boolean {
  return timingSafeEqual(Buffer.from(token.hash, 'hex'), createHash('sha256').update(secret).digest());
}

/** When a token stopped opening its view (revoked or expired), if it did by `now`. */
export function tokenClosedAt(token: Pick<ViewToken, 'expiresAt' | 'revokedAt'>, now: Date): string | undefined {
  const ends = [token.revokedAt, token.expiresAt].filter((t): t is string => t !== null && Date.parse(t) <= now.getTime()).sort();
  return ends[0];
}

/** The view opens to this token now. */
export const tokenOpensView = (token: Pick<ViewToken, 'expiresAt' | 'revokedAt'>, now: Date) => tokenClosedAt(token, now) === undefined;

/** The artifact URLs this token handed out still open: it is live, or closed less than `graceMs` ago. */
export function tokenOpensArtifacts(token: Pick<ViewToken, 'expiresAt' | 'revokedAt'>, now: Date, graceMs: number): boolean {
  const closed = tokenClosedAt(token, now);
  return closed === undefined || Date.parse(closed) > now.getTime() - graceMs;
}

/**
 * The capability of one file under one token: `ID.MAC`, MAC = HMAC-SHA256 keyed by the token's
 * stored hash over the view and the file's sha256 (128 bits). Who cannot read the store cannot
 * make one; one opens no other file, view or token.
 */
export function artifactCapability(token: Pick<ViewToken, 'id' | 'view' | 'hash'>, sha256: string): string {
  const mac = createHmac('sha256', Buffer.from(token.hash, 'hex')).update(`${token.view}\n${sha256}`).digest('hex').slice(0, 32);
  return `${token.id}.${mac}`;
}

/** The token id a capability names, if it has the shape of one. */
export function capabilityTokenId(capability: string): string | undefined {
  return /^([0-9a-f]{12})\.[0-9a-f]{32}$/.exec(capability)?.[1];
}

/** Whether `capability` is the one `token` hands out for `sha256` (constant time). */
export function capabilityMatches(token: Pick<ViewToken, 'id' | 'view' | 'hash'>, sha256: string, capability: string): boolean {
  const want = Buffer.from(artifactCapability(token, sha256));
  const got = Buffer.from(capability);
  return want.length === got.length && timingSafeEqual(want, got);
}

/**
 * Item paths of a view's index, relative to the remote URL `https://HOST/views/NAME/TOKEN` (the
 * clients resolve `..`, as path.Join does): public files at the server's /files/, private ones
 * under the view's own files with the token's capability.
 */
export function viewArtifactPath(token: Pick<ViewToken, 'id' | 'view' | 'hash'>, isPublic: (sha256: string) => boolean): (blob: BlobRef) => string {
  return (blob) => {
    const name = `${blob.sha256}${formatExtension(blob.format)}`;
    return isPublic(blob.sha256) ? `../../../files/${name}` : `../files/${artifactCapability(token, blob.sha256)}/${name}`;
  };
}

/**
 * The path of the server's root under which a view's URL path (`PREFIX/views/NAME/wvt_..`, with or
 * without a trailing slash) lies, or undefined for a path that is no view's.
 */
export function viewUrlRoot(pathname: string): string | undefined {
  const view = new RegExp(`^(.*/)${viewsSegment}/[^/]+/([^/]+)/?$`).exec(pathname);
  return view && parseToken(decodeURIComponent(view[2]!)) ? view[1]! : undefined;
}

/** The URL a token's holders add as a remote. */
export const viewUrl = (base: string, view: string, token: string) => `${base.replace(/\/+$/, '')}/${viewsSegment}/${view}/${token}`;

/** The errors every store driver gives, worded once. */
export const viewErrors = {
  exists: (name: string) => new AppError(ErrorCodes.conflict, `View "${name}" exists already`),
  missing: (name: string) => new AppError(ErrorCodes.notFound, `View "${name}" not found`, { hint: 'List the views with: wharf view list' }),
  tokenExists: (id: string) => new AppError(ErrorCodes.conflict, `A token with id ${id} exists already`),
  tokenMissing: (view: string, id: string) => new AppError(ErrorCodes.notFound, `View "${view}" has no token ${id}`, { hint: `List its tokens with: wharf view token list ${view}` }),
};
