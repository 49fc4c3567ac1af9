/**
 * The registry's bearer tokens, as Docker-style clients get them: `GET /v2/token?service=&scope=`
 * (with Basic credentials, or none for anonymous pulls) answers `{ token, expires_in, issued_at }`,
 * and the client sends `Authorization: Bearer TOKEN` on the requests of that scope. Opaque to
 * clients; here a payload (who, which repositories, which actions, until when) and its
 * HMAC-SHA256 with a key every serving process and host of this server derives the same way
 * (from the server's TLS key: the hosts that answer for its name hold it).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export type RegistryAction = 'pull' | 'push' | 'delete';

export interface RegistryGrant {
  /** Who: a push token's name, or '' for anonymous. */
  subject: string;
  /** Per repository, the actions allowed. */
  access: Record<string, RegistryAction[]>;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

export const tokenLifetimeSeconds = 300;

/** The token key of a server, from its TLS private key (PEM). */
export const tokenKey = (tlsKeyPem: string) => createHash('sha256').update('wharf registry tokens\0').update(tlsKeyPem).digest();

const b64 = (data: Buffer | string) => Buffer.from(data).toString('base64url');

export function signToken(key: Buffer, grant: RegistryGrant): string {
  const payload = b64(JSON.stringify({ s: grant.subject, a: grant.access, e: grant.expiresAt }));
  return `${payload}.${b64(createHmac('sha256', key).update(payload).digest())}`;
}

/** The grant of a token this key signed, if it has not expired at `now`. */
export function verifyToken(key: Buffer, token: string, now = Date.now()): RegistryGrant | undefined {
  const [payload, mac, extra] = token.split('.');
  if (!payload || !mac || extra !== undefined) return undefined;
  const expected = createHmac('sha256', key).update(payload).digest();
  const given = Buffer.from(mac, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    const { s, a, e } = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { s: string; a: Record<string, RegistryAction[]>; e: number };
    if (typeof e !== 'number' || e <= now) return undefined;
    return { subject: s, access: a, expiresAt: e };
  } catch {
    return undefined;
  }
}

/**
 * The scopes a client asks for (`repository:NAME:pull,push`; several `scope` parameters, or
 * several scopes in one separated by spaces): per repository, the actions asked.
 */
export function parseScopes(scopes: string[]): Record<string, RegistryAction[]> {
  const asked: Record<string, RegistryAction[]> = {};
  for (const scope of scopes.flatMap((s) => s.split(' ')).filter(Boolean)) {
    const match = /^repository(?:\([^)]*\))?:(.+):([a-z*,]+)$/.exec(scope);
    if (!match) continue;
    const actions = match[2]!.split(',').flatMap((a): RegistryAction[] => (a === '*' ? ['pull', 'push', 'delete'] : a === 'pull' || a === 'push' || a === 'delete' ? [a] : []));
    asked[match[1]!] = [...new Set([...(asked[match[1]!] ?? []), ...actions])];
  }
  return asked;
}

/** `Authorization: Basic` as user and password. */
export function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!match) return undefined;
  const text = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? undefined : { user: text.slice(0, colon), password: text.slice(colon + 1) };
}
