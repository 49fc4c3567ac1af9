/**
 * A client of another OCI registry (the upstream of a pull-through cache): manifests by tag or
 * digest (HEAD to learn a tag's digest: Docker Hub does not count HEADs as pulls), blobs as
 * streams. Authentication as Docker-style registries ask for it: a 401 with a Bearer challenge is
 * answered by a token from its realm for the repository's pull scope (anonymous, or with the
 * credentials wharf's configuration gives this upstream: never a client's), kept until it expires.
 * Redirects (a blob on a CDN) are followed without the Authorization header.
 */
import type { IncomingMessage } from 'node:http';
import { AppError, ErrorCodes } from '../errors.ts';
import { manifestMediaTypes, maxManifestBytes } from '../domain/oci.ts';
import { fetchJson, openUrl, withoutSecrets } from './fetch.ts';

/** What the cache asks for: every manifest type it keeps byte-exact. */
export const manifestAccept = [manifestMediaTypes.ociIndex, manifestMediaTypes.ociManifest, manifestMediaTypes.dockerList, manifestMediaTypes.dockerManifest].join(', ');

export interface UpstreamOptions {
  /** PEM pinned for this upstream, or '' for the system CA store. */
  certificate: string;
  credentials?: { username: string; password: string } | undefined;
}

export interface UpstreamManifest {
  /** sha256 hex from Docker-Content-Digest, if the upstream sent one. */
  digest: string | undefined;
  mediaType: string;
  bytes?: Buffer;
}

const redirects = new Set([301, 302, 303, 307, 308]);

export class RegistryClient {
  private readonly base: URL;
  private readonly options: UpstreamOptions;
  /** Tokens by repository, with when they expire (ms). */
  private readonly tokens = new Map<string, { token: string; until: number }>();

  constructor(base: string, options: UpstreamOptions) {
    this.base = new URL(base.endsWith('/') ? base : `${base}/`);
    this.options = options;
  }

  /** Docker Hub's official images live under library/: `alpine` is `library/alpine` there. */
  upstreamName(repository: string): string {
    const hub = /(^|\.)docker\.io$/.test(this.base.hostname);
    return hub && !repository.includes('/') ? `library/${repository}` : repository;
  }

  private url(path: string): URL {
    return new URL(`v2/${path}`, this.base);
  }

  /** A request for `repository`, with its token once the upstream asked for one; redirects followed without it. */
  private async send(repository: string, path: string, method: 'GET' | 'HEAD', headers: Record<string, string> = {}): Promise<IncomingMessage> {
    const attempt = async () => {
      const token = this.tokens.get(repository);
      const auth = token && token.until > Date.now() ? { authorization: `Bearer ${token.token}` } : this.basic();
      return openUrl(this.url(path), { method, headers: { ...headers, ...auth }, certificate: this.options.certificate || undefined, followRedirects: false });
    };
    let res = await attempt();
    if (res.statusCode === 401) {
      const challenge = String(res.headers['www-authenticate'] ?? '');
      res.resume();
      await this.authenticate(repository, challenge);
      res = await attempt();
    }
    for (let hop = 0; redirects.has(res.statusCode ?? 0) && res.headers.location && hop < 5; hop++) {
      res.resume();
      const next = new URL(res.headers.location, this.url(path));
      res = await openUrl(next, { method, headers, certificate: next.host === this.base.host ? this.options.certificate || undefined : undefined, followRedirects: false });
    }
    return res;
  }

  private basic(): Record<string, string> {
    const c = this.options.credentials;
    return c ? { authorization: `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` } : {};
  }

  /** Gets a pull token for `repository` from the realm of a Bearer challenge. */
  private async authenticate(repository: string, challenge: string): Promise<void> {
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    if (!/^Bearer\s/i.test(challenge) || !params.realm) throw new AppError(ErrorCodes.unavailable, `${this.base.host} wants credentials wharf has not got`);
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', `repository:${repository}:pull`);
    const answer = await fetchJson<{ token?: string; access_token?: string; expires_in?: number }>(realm, { headers: this.basic(), certificate: realm.host === this.base.host ? this.options.certificate || undefined : undefined });
    const token = answer.token ?? answer.access_token;
    if (!token) throw new AppError(ErrorCodes.unavailable, `${realm.host} gave no token`);
    this.tokens.set(repository, { token, until: Date.now() + Math.max(30, (answer.expires_in ?? 60) - 15) * 1000 });
  }

  private failure(res: IncomingMessage, what: string): AppError {
    res.resume();
    const where = withoutSecrets(`${this.base.host}: ${what}`);
    if (res.statusCode === 404) return new AppError(ErrorCodes.notFound, `${where} is not there upstream`);
    if (res.statusCode === 429) return new AppError(ErrorCodes.unavailable, `${where}: the upstream limits its rate (429)`);
    return new AppError(ErrorCodes.unavailable, `${where}: upstream answered HTTP ${res.statusCode}`);
  }

  /** A manifest's digest and type (HEAD), or the manifest itself (GET, at most 4 MiB). */
  async manifest(repository: string, reference: string, method: 'HEAD' | 'GET'): Promise<UpstreamManifest> {
    const name = this.upstreamName(repository);
    const res = await this.send(name, `${name}/manifests/${reference}`, method, { accept: manifestAccept });
    if (res.statusCode !== 200) throw this.failure(res, `manifest ${repository}:${reference}`);
    const header = String(res.headers['docker-content-digest'] ?? '');
    const digest = /^sha256:([0-9a-f]{64})$/.exec(header)?.[1];
    const mediaType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (method === 'HEAD') {
      res.resume();
      return { digest, mediaType };
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxManifestBytes) {
        res.destroy();
        throw new AppError(ErrorCodes.upstreamCorrupt, `${this.base.host}: manifest ${repository}:${reference} is larger than ${maxManifestBytes} bytes`);
      }
      chunks.push(chunk);
    }
    return { digest, mediaType, bytes: Buffer.concat(chunks) };
  }

  /** Every tag of a repository (following the upstream's pagination, at most 100 pages). */
  async tags(repository: string): Promise<string[]> {
    const name = this.upstreamName(repository);
    const tags: string[] = [];
    let path: string | undefined = `${name}/tags/list?n=1000`;
    for (let pages = 0; path && pages < 100; pages++) {
      const res = await this.send(name, path, 'GET', { accept: 'application/json' });
      if (res.statusCode !== 200) throw this.failure(res, `tags of ${repository}`);
      const chunks: Buffer[] = [];
      for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { tags?: unknown };
      if (Array.isArray(body.tags)) tags.push(...body.tags.filter((t): t is string => typeof t === 'string'));
      const next = /<\/v2\/([^>]+)>;\s*rel="next"/.exec(String(res.headers.link ?? ''))?.[1];
      path = next;
    }
    return [...new Set(tags)].sort();
  }

  /** A blob's bytes as a stream (status 200), for the caller to verify as it stores them. */
  async blob(repository: string, sha256: string): Promise<IncomingMessage> {
    const name = this.upstreamName(repository);
    const res = await this.send(name, `${name}/blobs/sha256:${sha256}`, 'GET');
    if (res.statusCode !== 200) throw this.failure(res, `blob sha256:${sha256.slice(0, 12)} of ${repository}`);
    return res;
  }
}
