/**
 * A client for the image endpoints of another LXD-protocol server (LXD, Incus or wharf): enough to
 * pull one image, by fingerprint or alias, with an optional one-time secret. The server's
 * certificate is pinned when one is given (as LXD daemons pass it along), else the system CA
 * store decides, as it does for lxc.
 */
import { AppError, ErrorCodes, asUpstreamFault, isAppError } from '../errors.ts';
import type { ApiImage } from '../domain/lxd-api.ts';
import type { IngestSource } from '../core/ingest.ts';
import { imageBodySources } from '../transfer/image-body.ts';
import { getJson, openUrl, withoutSecrets } from './fetch.ts';

export interface LxdImageSource {
  server: string;
  /** PEM of the server certificate to pin; empty to trust the system CA store. */
  certificate?: string | undefined;
  fingerprint?: string | undefined;
  alias?: string | undefined;
  secret?: string | undefined;
}

/** The metadata of an LXD API answer; its error envelope (or any non-200) as an AppError. */
async function getMetadata<T>(url: URL, certificate: string | undefined, signal?: AbortSignal): Promise<T> {
  const { status, json } = await getJson(url, { certificate, signal });
  if (typeof json !== 'object' || json === null) {
    throw new AppError(ErrorCodes.unavailable, `${withoutSecrets(url.href)}: not an LXD API answer (HTTP ${status})`);
  }
  const body = json as { type?: string; error?: string; metadata?: T };
  if (status !== 200 || body.type === 'error') {
    throw new AppError(status === 404 ? ErrorCodes.notFound : ErrorCodes.unavailable, `${url.origin}: ${body.error || `HTTP ${status}`}`);
  }
  return body.metadata as T;
}

/** The fingerprint an alias names on an LXD-protocol server. */
export async function lxdAliasTarget(remote: { url: string; certificate: string }, alias: string, signal?: AbortSignal): Promise<string> {
  const url = new URL(`${remote.url.replace(/\/+$/, '')}/1.0/images/aliases/${encodeURIComponent(alias)}`);
  return (await getMetadata<{ target: string }>(url, remote.certificate || undefined, signal)).target;
}

export async function openLxdImage(
  source: LxdImageSource,
  options: { limit: number; signal?: AbortSignal },
): Promise<{ info: ApiImage; sources: IngestSource[]; alias: string | undefined }> {
  const base = source.server.replace(/\/+$/, '');
  const url = (path: string) => {
    const u = new URL(base + path);
    if (source.secret) u.searchParams.set('secret', source.secret);
    return u;
  };
  const ref = source.alias || source.fingerprint;
  if (!ref) throw new AppError(ErrorCodes.invalidArgument, 'The source names neither a fingerprint nor an alias');
  // As the LXD and Incus daemons do, the "fingerprint" of a pull is tried as an alias first: their
  // CLIs put the alias there when copying from a public remote by alias (for auto-update). A pull
  // with a secret is of one private image, by fingerprint only.
  let fingerprint: string = source.fingerprint ?? ref;
  let alias: string | undefined;
  if (source.alias || !source.secret) {
    try {
      fingerprint = (await getMetadata<{ target: string }>(url(`/1.0/images/aliases/${encodeURIComponent(ref)}`), source.certificate, options.signal)).target;
      alias = ref;
    } catch (err) {
      if (source.alias || !isAppError(err, ErrorCodes.notFound)) throw err;
    }
  }
  const info = await getMetadata<ApiImage>(url(`/1.0/images/${encodeURIComponent(fingerprint)}`), source.certificate, options.signal);
  const res = await openUrl(url(`/1.0/images/${encodeURIComponent(info.fingerprint)}/export`), { certificate: source.certificate, signal: options.signal });
  if (res.statusCode !== 200) {
    res.resume();
    throw new AppError(ErrorCodes.unavailable, `${base}: export of ${info.fingerprint} answered HTTP ${res.statusCode}`);
  }
  const disposition = /filename="?([^";]+)"?/.exec(String(res.headers['content-disposition'] ?? ''))?.[1];
  try {
    const sources = await imageBodySources(res, options.limit, disposition ?? info.filename);
    return { info, sources: sources.map(fromUpstream), alias };
  } catch (err) {
    throw asUpstreamFault(err, bodyFaults);
  }
}

/** A body that does not parse as an image export was sent wrong by the server, not asked for wrong. */
const bodyFaults = [ErrorCodes.invalidArgument];

function fromUpstream(source: IngestSource): IngestSource {
  const { chunks } = source;
  async function* checked(): AsyncIterable<Uint8Array> {
    try {
      yield* chunks;
    } catch (err) {
      throw asUpstreamFault(err, bodyFaults);
    }
  }
  return { ...source, chunks: checked() };
}
