/**
 * A client for the image endpoints of another LXD-protocol server (LXD, Incus or wharf): enough to
 * pull one image, by fingerprint or alias, with an optional one-time secret. The server's
 * certificate is pinned when one is given (as LXD daemons pass it along), else the system CA
 * store decides, as it does for lxc.
 */
import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { X509Certificate } from 'node:crypto';
import { getCACertificates, type PeerCertificate } from 'node:tls';
import { AppError, ErrorCodes } from '../errors.ts';
import type { ApiImage } from '../domain/lxd-api.ts';
import type { IngestSource } from '../core/ingest.ts';
import { imageBodySources } from '../transfer/image-body.ts';

export interface LxdImageSource {
  server: string;
  /** PEM of the server certificate to pin; empty to trust the system CA store. */
  certificate?: string | undefined;
  fingerprint?: string | undefined;
  alias?: string | undefined;
  secret?: string | undefined;
}

const headerTimeoutMs = 30_000;

function tlsOptions(certificate: string | undefined): RequestOptions {
  if (!certificate) return { ca: getCACertificates('system') };
  const pinned = new X509Certificate(certificate).fingerprint256;
  // The pinned certificate is the trust anchor: its name need not match the address we dial.
  return { ca: certificate, checkServerIdentity: (_host: string, cert: PeerCertificate) => (cert.fingerprint256 === pinned ? undefined : new Error('server certificate does not match the pinned one')) };
}

function get(url: URL, certificate: string | undefined, signal?: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', ...tlsOptions(certificate), ...(signal ? { signal } : {}) }, resolve);
    req.setTimeout(headerTimeoutMs, () => req.destroy(new AppError(ErrorCodes.unavailable, `${url.origin} did not answer within ${headerTimeoutMs / 1000} s`)));
    req.on('error', (err) => reject(err instanceof AppError ? err : new AppError(ErrorCodes.unavailable, `Cannot reach ${url.origin}: ${err.message}`)));
    req.end();
  });
}

async function getJson<T>(url: URL, certificate: string | undefined, signal?: AbortSignal): Promise<T> {
  const res = await get(url, certificate, signal);
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  let body: { type?: string; error?: string; metadata?: T };
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new AppError(ErrorCodes.unavailable, `${url.href}: not an LXD API answer (HTTP ${res.statusCode})`);
  }
  if (res.statusCode !== 200 || body.type === 'error') {
    throw new AppError(res.statusCode === 404 ? ErrorCodes.notFound : ErrorCodes.unavailable, `${url.origin}: ${body.error || `HTTP ${res.statusCode}`}`);
  }
  return body.metadata as T;
}

export async function openLxdImage(
  source: LxdImageSource,
  options: { limit: number; signal?: AbortSignal },
): Promise<{ info: ApiImage; sources: IngestSource[] }> {
  const base = source.server.replace(/\/+$/, '');
  const url = (path: string) => {
    const u = new URL(base + path);
    if (source.secret) u.searchParams.set('secret', source.secret);
    return u;
  };
  let fingerprint = source.fingerprint;
  if (!fingerprint) {
    if (!source.alias) throw new AppError(ErrorCodes.invalidArgument, 'The source names neither a fingerprint nor an alias');
    fingerprint = (await getJson<{ target: string }>(url(`/1.0/images/aliases/${encodeURIComponent(source.alias)}`), source.certificate, options.signal)).target;
  }
  const info = await getJson<ApiImage>(url(`/1.0/images/${encodeURIComponent(fingerprint)}`), source.certificate, options.signal);
  const res = await get(url(`/1.0/images/${encodeURIComponent(info.fingerprint)}/export`), source.certificate, options.signal);
  if (res.statusCode !== 200) {
    res.resume();
    throw new AppError(ErrorCodes.unavailable, `${base}: export of ${info.fingerprint} answered HTTP ${res.statusCode}`);
  }
  const disposition = /filename="?([^";]+)"?/.exec(String(res.headers['content-disposition'] ?? ''))?.[1];
  return { info, sources: await imageBodySources(res, options.limit, disposition ?? info.filename) };
}
