/**
 * Push tokens: how a builder uploads without a client certificate (`wharf token add NAME --push
 * GLOB`): `Authorization: Bearer wpt_ID_SECRET` on `POST /1.0/images` (the LXD upload format).
 * A token pushes only products matching one of its globs, into the staging channel, private,
 * until it expires or is revoked. Stored hashed, compared in constant time (as view tokens,
 * domain/view.ts), listed by id and name.
 */
import { secretMatches } from './view.ts';
import { AppError, ErrorCodes } from '../errors.ts';

export interface PushToken {
  /** 12 hex digits; not a secret. */
  id: string;
  /** Who or what it is for (a builder). */
  name: string;
  /** Product globs (`os:release:arch:variant`, `*` for any characters), compared without case. */
  globs: string[];
  hash: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
}

const tokenPattern = /^wpt_([0-9a-f]{12})_([0-9a-f]{64})$/;

export const formatPushToken = (id: string, secret: string) => `wpt_${id}_${secret}`;

export function parsePushToken(token: string): { id: string; secret: string } | undefined {
  const m = tokenPattern.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

/** The token of `Authorization: Bearer TOKEN`, if that is what the header holds. */
export function bearerToken(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
}

/** Does `secret` belong to `token`? In constant time, as a view token's. */
export const pushTokenMatches = (token: Pick<PushToken, 'hash'>, secret: string): boolean => secretMatches(token, secret);

export const pushTokenLive = (token: Pick<PushToken, 'expiresAt' | 'revokedAt'>, now: Date) =>
  token.revokedAt === null && (token.expiresAt === null || Date.parse(token.expiresAt) > now.getTime());

/**
 * A glob as given: a product key's four fields (images), or a registry repository's name (OCI
 * pushes; no colon, so neither kind ever matches the other), `*` matching any characters.
 */
export function checkProductGlob(glob: string): string {
  if (!/^[^\s:]+:[^\s:]+:[^\s:]+:[^\s:]+$/.test(glob) && !/^[a-z0-9*][a-z0-9._/*-]*$/.test(glob)) {
    throw new AppError(ErrorCodes.invalidArgument, `"${glob.slice(0, 100)}" is neither a product glob nor a repository glob`, {
      hint: 'os:release:architecture:variant for images (such as debian:*:amd64:*), a repository name for the registry (such as myorg/*); * for any',
    });
  }
  return glob.toLowerCase();
}

/** Whether a product key or a repository name matches one of the globs (compared without case). */
export function globsMatch(globs: string[], name: string): boolean {
  const key = name.toLowerCase();
  return globs.some((glob) => new RegExp(`^${glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(key));
}

export const pushTokenErrors = {
  exists: (id: string) => new AppError(ErrorCodes.conflict, `A push token with id ${id} exists already`),
  missing: (id: string) => new AppError(ErrorCodes.notFound, `No push token ${id}`, { hint: 'List them with: wharf token list' }),
};
