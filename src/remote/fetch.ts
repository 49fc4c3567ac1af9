/**
 * Opening a URL on another server, or a path in a local tree (air-gapped copies): one shape for
 * both, a status and a body stream. HTTPS trusts the system CA store (as lxc does: Node's bundled
 * list alone would reject a company CA), or exactly one pinned certificate.
 */
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { request as httpRequest } from '../builtins/http.ts';
import { X509Certificate } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { decompressor } from '../archive/decompress.ts';
import { stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { createSecureContext, getCACertificates, type PeerCertificate, type SecureContext } from 'node:tls';
import { viewUrlRoot } from '../domain/view.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import { redactSecrets } from '../domain/redact.ts';

/** Response headers must start within this, as LXD clients require of image servers. */
export const headerTimeoutMs = 30_000;

export interface FetchOptions {
  /** PEM to pin instead of trusting the system CA store. */
  certificate?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Abort a transfer that sends nothing for this long. */
  idleTimeoutMs?: number;
  /** Sent as User-Agent (servers may answer each client family its own view). */
  userAgent?: string | undefined;
  /** More request headers (If-None-Match...). */
  headers?: Record<string, string> | undefined;
  /** false: a redirect is the answer, for the caller to judge (a site's health check). */
  followRedirects?: boolean | undefined;
  /** HEAD asks for the headers only (a registry's manifest digest); GET by default. */
  method?: 'GET' | 'HEAD' | undefined;
}

/**
 * The system CA store as one TLS context, made once: a context built from it per request (what
 * `ca: getCACertificates('system')` does) parsed every certificate of the store each time, ~34 ms
 * of this thread per HTTPS fetch with Debian's store, every site check and every mirror fill.
 * Node reads the store once per process and hands out the same list after; a new list (its
 * defaults changed) makes a new context.
 */
let systemTrust: { ca: readonly string[]; context: SecureContext } | undefined;
function systemContext(): SecureContext {
  const ca = getCACertificates('system');
  if (systemTrust?.ca !== ca) systemTrust = { ca, context: createSecureContext({ ca: [...ca] }) };
  return systemTrust.context;
}
/** Its own connection pool: the default agent's pool key does not tell contexts apart. */
const systemAgent = new HttpsAgent({ keepAlive: true });

/** What https.request passes on to tls.connect (which takes a ready context). */
function tlsOptions(certificate: string | undefined): RequestOptions & { secureContext?: SecureContext } {
  if (!certificate) return { secureContext: systemContext(), agent: systemAgent };
  const pinned = new X509Certificate(certificate).fingerprint256;
  // The pinned certificate is the trust anchor: its name need not match the address we dial.
  return {
    ca: certificate,
    checkServerIdentity: (_host: string, cert: PeerCertificate) =>
      cert.fingerprint256 === pinned ? undefined : new Error('the server certificate does not match the pinned one'),
  };
}

/**
 * A URL or path fit for messages and logs: its user-info and the values of credential query
 * parameters (a one-time image `secret`, tokens) are replaced, as anyone reading the message
 * could otherwise use them (domain/redact.ts).
 */
export const withoutSecrets = redactSecrets;

/** Redirects followed per request, as Go's http client (and so lxc and incus) follows them. */
const maxRedirects = 10;
const redirectStatuses = new Set([301, 302, 303, 307, 308]);

/**
 * GET a URL; resolves once the response headers arrived. Redirects are followed as the clients
 * follow them (an origin steering downloads to a mirror, a mirror sending index requests to its
 * origin), to http or https only: what arrives is checked against the index either way.
 */
export async function openUrl(url: URL, options: FetchOptions = {}): Promise<IncomingMessage> {
  if (url.protocol === 'file:') return openFile(url);
  let current = url;
  for (let hop = 0; ; hop++) {
    const res = await requestOnce(current, options);
    const location = res.headers.location;
    if (!redirectStatuses.has(res.statusCode ?? 0) || !location || options.followRedirects === false) return res;
    res.resume();
    const next = URL.canParse(location, current.href) ? new URL(location, current) : undefined;
    if (!next || (next.protocol !== 'http:' && next.protocol !== 'https:')) {
      throw new AppError(ErrorCodes.unavailable, `${withoutSecrets(current.href)} redirects to something other than an http(s) URL`);
    }
    if (hop >= maxRedirects) throw new AppError(ErrorCodes.unavailable, `${withoutSecrets(url.href)}: more than ${maxRedirects} redirects`);
    current = next;
  }
}

function requestOnce(url: URL, options: FetchOptions): Promise<IncomingMessage> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? 'GET', headers: { ...options.headers, ...(options.userAgent ? { 'user-agent': options.userAgent } : {}) }, ...(url.protocol === 'https:' ? tlsOptions(options.certificate) : {}), ...(options.signal ? { signal: options.signal } : {}) },
      (res) => {
        res.setTimeout(options.idleTimeoutMs ?? 60_000, () => res.destroy(new AppError(ErrorCodes.unavailable, `${withoutSecrets(url.href)}: the transfer stalled`)));
        resolve(res);
      },
    );
    req.setTimeout(headerTimeoutMs, () => req.destroy(new AppError(ErrorCodes.unavailable, `${url.origin} did not answer within ${headerTimeoutMs / 1000} s`)));
    req.on('error', (err) => reject(err instanceof AppError ? err : new AppError(ErrorCodes.unavailable, `Cannot reach ${url.origin}: ${err.message}`)));
    req.end();
  });
}

/** A local file as if it were an HTTP 200 (or 404) response. */
async function openFile(url: URL): Promise<IncomingMessage> {
  const path = decodeURIComponent(url.pathname);
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) {
    const empty = createReadStream('/dev/null') as unknown as IncomingMessage;
    return Object.assign(empty, { statusCode: 404, headers: {} });
  }
  const stream = createReadStream(path, { highWaterMark: 1 << 20 }) as unknown as IncomingMessage;
  return Object.assign(stream, { statusCode: 200, headers: { 'content-length': String(info.size) } });
}

export interface JsonAnswer {
  status: number;
  headers: IncomingMessage['headers'];
  /** The document's bytes, exactly as the server holds them (what a signature covers), gzip undone. */
  bytes: Buffer;
  /** The body as read, for messages. */
  text: string;
  /** The parsed body; undefined when it is not JSON. */
  json: unknown;
}

/**
 * The most a JSON document of another server may hold. images.linuxcontainers.org's images.json,
 * the largest index in the field, is a few MB; a server sending without end would otherwise be
 * read into memory until the process dies.
 */
export const documentLimitBytes = 64 * 1024 * 1024;

/**
 * The time a JSON document (an index) has to arrive whole, unless the caller says otherwise. The
 * idle timeout alone let a server trickling a byte every few seconds hold a reader forever (a
 * mirror's start, a sync, the scheduler behind it); at 2 minutes, the 64 MiB limit still arrives
 * over a link of 0.5 MiB/s, and a real index (a few MB gzipped) over far slower ones.
 */
export const documentDeadlineMs = 120_000;

export interface JsonFetchOptions extends FetchOptions {
  /** The time the whole answer has (headers and body): `documentDeadlineMs` by default, 0 none. */
  deadlineMs?: number | undefined;
}

/** GET a whole (small) JSON answer, whatever its status: the caller decides what an error is. */
export async function getJson(url: URL, options: JsonFetchOptions = {}): Promise<JsonAnswer> {
  const deadlineMs = options.deadlineMs ?? documentDeadlineMs;
  if (deadlineMs <= 0) return readJson(url, options);
  const deadline = AbortSignal.timeout(deadlineMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  try {
    return await readJson(url, { ...options, signal });
  } catch (err) {
    if (!deadline.aborted || options.signal?.aborted) throw err;
    throw new AppError(ErrorCodes.unavailable, `${withoutSecrets(url.href)} did not arrive whole within ${deadlineMs / 1000} s`, { cause: err });
  }
}

async function readJson(url: URL, options: FetchOptions): Promise<JsonAnswer> {
  // Compressed if the server will, as Go's client (and so lxc and incus) asks: an index is JSON,
  // a tenth of its size in gzip.
  const res = await openUrl(url, { ...options, headers: { 'accept-encoding': 'gzip', ...options.headers } });
  const where = withoutSecrets(url.href);
  const tooLarge = () => {
    res.destroy();
    return new AppError(ErrorCodes.upstreamCorrupt, `${where} is larger than ${documentLimitBytes / 1024 / 1024} MiB, more than any index document`);
  };
  if (Number(res.headers['content-length'] ?? 0) > documentLimitBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    // The limit counts what the document holds, after decompression: a small gzip may hold gigabytes.
    for await (const c of decoded(res, where)) {
      received += c.byteLength;
      if (received > documentLimitBytes) throw tooLarge();
      chunks.push(c);
    }
  } catch (err) {
    res.destroy();
    if (err instanceof AppError) throw err;
    // The connection dropped mid-answer ("aborted"): the server is as good as unreachable.
    throw new AppError(ErrorCodes.unavailable, `${where}: the answer was cut off (${(err as Error).message})`, { cause: err });
  }
  const bytes = Buffer.concat(chunks);
  const text = bytes.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode ?? 0, headers: res.headers, bytes, text, json };
}

/** The body of `res` without its content encoding: none, or gzip (the only one getJson asks for). */
function decoded(res: IncomingMessage, where: string): AsyncIterable<Buffer> {
  const encoding = String(res.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  // A 304 names the encoding the document would come in, and has no body to decode.
  if (encoding === 'identity' || encoding === '' || res.statusCode === 304 || res.statusCode === 204) return res;
  if (encoding !== 'gzip' && encoding !== 'x-gzip') {
    throw new AppError(ErrorCodes.upstreamCorrupt, `${where} came in the ${encoding} encoding, which was not asked for (only gzip)`);
  }
  const gunzip = decompressor('gzip');
  res.on('error', (err) => gunzip.destroy(err));
  res.pipe(gunzip);
  return (async function* () {
    try {
      for await (const c of gunzip as AsyncIterable<Buffer>) yield c;
    } catch (err) {
      if (err instanceof AppError) throw err;
      // A zlib error: the bytes are not the gzip they claim to be (an error of the transfer
      // itself, such as a cut connection, is passed on as it is).
      if ((err as NodeJS.ErrnoException).code?.startsWith('Z_')) throw new AppError(ErrorCodes.upstreamCorrupt, `${where} is not valid gzip: ${(err as Error).message}`);
      throw err;
    } finally {
      gunzip.destroy();
    }
  })();
}

/** A whole (small) document, e.g. an index; fails on anything but 200. */
export async function fetchJson<T = unknown>(url: URL, options: JsonFetchOptions = {}): Promise<T> {
  return documentOf<T>(url, await getJson(url, options));
}

/** The parsed document of a 200 answer from `url`; anything else is the error it means. */
export function documentOf<T = unknown>(url: URL, { status, text, json }: JsonAnswer): T {
  if (status !== 200) {
    throw new AppError(status === 404 ? ErrorCodes.notFound : ErrorCodes.unavailable, `${withoutSecrets(url.href)}: HTTP ${status}`, { cause: text.slice(0, 200) });
  }
  if (json === undefined) throw new AppError(ErrorCodes.unavailable, `${withoutSecrets(url.href)} is not valid JSON`);
  return json as T;
}

/** The path every file of the remote at `root` (ending in `/`) must be under. */
function scopeOf(root: URL): string {
  return (root.protocol === 'https:' && viewUrlRoot(root.pathname)) || root.pathname;
}

/**
 * The URL of `path` under a remote's base URL (a trailing slash is implied, as clients do).
 * `path` comes from the remote's own index, so it is untrusted: one that names another scheme or
 * host, or climbs out of the base (`..`, `%2e%2e`, an encoded `/` in a local tree) is refused
 * rather than opened. A wharf private view's URL (`https://HOST/views/NAME/TOKEN`) lists its files
 * out of it, on its server (domain/view.ts): there the server's root is the base.
 */
export function under(base: string, path: string): URL {
  const root = new URL(/^[a-z][a-z0-9+.-]*:/i.test(base) ? base : `file://${base.startsWith('/') ? '' : process.cwd() + '/'}${base}`);
  if (!root.pathname.endsWith('/')) root.pathname += '/';
  const leaves = () => new AppError(ErrorCodes.upstreamCorrupt, `${withoutSecrets(root.href)} lists a file outside itself: "${path.slice(0, 200)}"`);
  if (/^[a-z][a-z0-9+.-]*:/i.test(path) || path.includes('\\')) throw leaves();
  const url = new URL(path.replace(/^\/+/, ''), root);
  if (url.origin !== root.origin || !url.pathname.startsWith(scopeOf(root))) throw leaves();
  if (url.protocol === 'file:' && !resolvePath(decodeURIComponent(url.pathname)).startsWith(resolvePath(decodeURIComponent(root.pathname)) + '/')) throw leaves();
  return url;
}
