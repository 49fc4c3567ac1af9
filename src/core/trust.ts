/**
 * Who is trusted over the LXD API: client certificates in the trust store, added by the operator
 * (`wharf trust add`) or by a client presenting a one-time join token (`wharf trust add-token`).
 * A token is what `lxc remote add NAME TOKEN` understands: base64 of JSON with the server's
 * addresses and certificate fingerprint, so the client can pin the server before it trusts it.
 */
import { X509Certificate, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError, ErrorCodes } from '../errors.ts';
import type { TrustedCertificate, TrustStore } from '../meta/store.ts';
import { certificateFingerprint, isSha256 } from '../domain/fingerprint.ts';
import { channelSet } from '../domain/channel.ts';

export function parseCertificate(pemOrDer: string | Buffer): X509Certificate {
  try {
    return new X509Certificate(pemOrDer);
  } catch (err) {
    throw new AppError(ErrorCodes.invalidArgument, `Not an X.509 certificate: ${(err as Error).message}`);
  }
}

/** Trusts `cert`; with `channels`, to read the private images of those channels only. */
export async function trustCertificate(store: { meta: TrustStore }, cert: X509Certificate, name?: string, channels?: string[]): Promise<TrustedCertificate> {
  const entry: TrustedCertificate = {
    fingerprint: certificateFingerprint(cert),
    name: name || /CN=([^\n,]+)/.exec(cert.subject)?.[1] || 'client',
    certificate: cert.toString(),
    createdAt: new Date().toISOString(),
    channels: channels?.length ? channelSet(channels) : null,
  };
  await store.meta.addCertificate(entry);
  return entry;
}

/** Stops trusting the one certificate whose fingerprint starts with `prefix`. */
export async function untrustCertificate(store: { meta: TrustStore }, prefix: string): Promise<TrustedCertificate> {
  const matches = (await store.meta.listCertificates()).filter((c) => c.fingerprint.startsWith(prefix.toLowerCase()));
  if (matches.length !== 1) {
    throw new AppError(matches.length ? ErrorCodes.ambiguous : ErrorCodes.notFound, `${matches.length || 'No'} trusted certificates match "${prefix}"`);
  }
  await store.meta.removeCertificate(matches[0]!.fingerprint);
  return matches[0]!;
}

export async function isTrusted(store: { meta: TrustStore }, fingerprint: string | undefined): Promise<boolean> {
  return fingerprint !== undefined && (await store.meta.getCertificate(fingerprint)) !== undefined;
}

export interface JoinToken {
  client_name: string;
  fingerprint: string;
  addresses: string[];
  secret: string;
  expires_at: string;
}

export async function createJoinToken(
  store: { meta: TrustStore },
  options: { name: string; serverFingerprint: string; addresses: string[]; ttlSeconds: number },
): Promise<string> {
  if (options.addresses.length === 0) throw new AppError(ErrorCodes.invalidArgument, 'A join token needs at least one server address');
  if (!Number.isInteger(options.ttlSeconds) || options.ttlSeconds <= 0) throw new AppError(ErrorCodes.invalidArgument, 'A join token must be valid for a whole number of seconds, at least 1');
  const now = new Date();
  const expiresAt = new Date(now.getTime() + options.ttlSeconds * 1000).toISOString();
  const secret = randomBytes(32).toString('hex');
  await store.meta.addToken({ secret, name: options.name, createdAt: now.toISOString(), expiresAt });
  const token: JoinToken = {
    client_name: options.name,
    fingerprint: options.serverFingerprint,
    addresses: options.addresses,
    secret,
    expires_at: expiresAt,
  };
  return Buffer.from(JSON.stringify(token)).toString('base64');
}

/**
 * A client sent a join secret (lxc 5.0 sends the whole token, or just its secret, as "password")
 * with its certificate: trust that certificate if the secret is a live token, once.
 */
export async function joinWithSecret(store: { meta: TrustStore }, presented: string, cert: X509Certificate | undefined): Promise<TrustedCertificate> {
  if (!cert) throw new AppError(ErrorCodes.forbidden, 'No client certificate was presented');
  const secret = secretOf(presented);
  const token = secret ? await store.meta.consumeToken(secret, new Date().toISOString()) : undefined;
  if (!token || !timingSafeEqual(Buffer.from(token.secret), Buffer.from(secret!))) {
    throw new AppError(ErrorCodes.forbidden, 'not authorized');
  }
  const existing = await store.meta.getCertificate(certificateFingerprint(cert));
  return existing ?? trustCertificate(store, cert, token.name);
}

function secretOf(presented: string): string | undefined {
  if (isSha256(presented)) return presented;
  try {
    const decoded = JSON.parse(Buffer.from(presented, 'base64').toString('utf8')) as Partial<JoinToken>;
    return typeof decoded.secret === 'string' ? decoded.secret : undefined;
  } catch {
    return undefined;
  }
}
