/**
 * The OCI Distribution API at /v2/ (issue 27), on the image store's blobs. One route takes every
 * /v2/ request (repository names hold slashes) and `parseOciPath` says what it names; the use
 * cases are core/registry.ts; errors are answered in the spec's envelope by http/errors.ts.
 * Bodies are read as streams (blobs never in memory; a manifest at most 4 MiB).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Store } from '../../core/context.ts';
import { appendUpload, cancelUpload, finishUpload, manifestOf, mountBlob, pushManifest, repositoryBlob, startUpload, storedManifestBytes, uploadSize, uploadWhole } from '../../core/registry.ts';
import { noneMatch } from '../conditional.ts';
import { OciError, isRepositoryName, maxManifestBytes, page, parseDigest, parseOciPath, parseReference, readDigest, readReference, type OciPath } from '../../domain/oci.ts';
import type { OciManifest } from '../../meta/store.ts';
import { sendBlob } from '../send-blob.ts';
import { authenticated, authorize, isPublicRepository, issueToken, type RegistryAuth } from './auth.ts';
import type { CachedRepository, OciCache } from '../../mirror/oci-cache.ts';
import type { RegistryCounts } from '../../metrics/server-metrics.ts';

const apiVersion = { 'docker-distribution-api-version': 'registry/2.0' };
const digestOf = (sha256: string) => `sha256:${sha256}`;
const jsonBytes = (value: unknown) => Buffer.from(JSON.stringify(value));

/** The raw path of a request, without its query. */
const pathOf = (request: FastifyRequest) => request.url.split('?')[0]!;

/** A request body as chunks (a stream: never gathered, but for a manifest). */
const bodyOf = (request: FastifyRequest): AsyncIterable<Uint8Array> => request.raw;

async function manifestBytes(request: FastifyRequest): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of bodyOf(request)) {
    size += chunk.length;
    if (size > maxManifestBytes) throw new OciError('MANIFEST_INVALID', `the manifest is larger than ${maxManifestBytes} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** Content-Range of a PATCH: where its bytes go (`start-end`), if it says. */
function chunkStart(request: FastifyRequest): number | undefined {
  const header = request.headers['content-range'];
  if (header === undefined) return undefined;
  const match = /^(?:bytes[ =])?(\d+)-(\d+)$/.exec(String(header).trim());
  if (!match) throw new OciError('BLOB_UPLOAD_INVALID', `bad Content-Range ${JSON.stringify(String(header).slice(0, 40))}`);
  return Number(match[1]);
}

const queryOf = (request: FastifyRequest) => request.query as Record<string, string | string[] | undefined>;
const one = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

function uploadAnswer(reply: FastifyReply, status: number, name: string, id: string, size: number): FastifyReply {
  return reply
    .code(status)
    .headers({ ...apiVersion, location: `/v2/${name}/blobs/uploads/${id}`, range: `0-${Math.max(0, size - 1)}`, 'docker-upload-uuid': id, 'content-length': '0' })
    .send();
}

function blobCreated(reply: FastifyReply, name: string, sha256: string): FastifyReply {
  return reply.code(201).headers({ ...apiVersion, location: `/v2/${name}/blobs/${digestOf(sha256)}`, 'docker-content-digest': digestOf(sha256), 'content-length': '0' }).send();
}

function manifestHeaders(manifest: OciManifest) {
  return { ...apiVersion, 'content-type': manifest.mediaType, 'docker-content-digest': digestOf(manifest.sha256) };
}

/**
 * Manifests' bytes by sha256, as last read: content-addressed, so never stale; what clients ask
 * for most (every pull starts with one or two), answered without opening a file. Bounded: the
 * oldest go first past `manifestCacheBytes`.
 */
class ManifestBytes {
  private readonly kept = new Map<string, Buffer>();
  private bytes = 0;

  async get(store: Store, manifest: OciManifest): Promise<Buffer> {
    const hit = this.kept.get(manifest.sha256);
    if (hit) return hit;
    const read = await storedManifestBytes(store, manifest);
    this.kept.set(manifest.sha256, read);
    this.bytes += read.length;
    for (const [sha, old] of this.kept) {
      if (this.bytes <= manifestCacheBytes) break;
      this.kept.delete(sha);
      this.bytes -= old.length;
    }
    return read;
  }
}

const manifestCacheBytes = 32 * 1024 * 1024;

/** A manifest's answer: its exact bytes and type, its digest, an ETag (304), HEAD; by tag not cached by clients. */
async function sendManifest(deps: RegistryDeps, request: FastifyRequest, reply: FastifyReply, manifest: OciManifest, byTag: boolean): Promise<FastifyReply> {
  const etag = `"${manifest.sha256}"`;
  reply.headers({ ...manifestHeaders(manifest), etag, 'cache-control': byTag ? 'no-cache' : 'public, max-age=31536000, immutable' });
  if (noneMatch(request.headers['if-none-match'], etag)) return reply.code(304).send();
  reply.header('content-length', String(manifest.size));
  if (request.method === 'HEAD') return reply.send();
  if (request.method === 'GET') deps.counts.pulls++;
  return reply.send(await deps.manifests.get(deps.store, manifest));
}

export interface RegistryDeps {
  store: Store;
  auth: RegistryAuth;
  cache: OciCache;
  counts: RegistryCounts;
  manifests: ManifestBytes;
}

/** Reads of a cached repository (its name starts with an OCI remote's): from the cache, fetched upstream as needed. */
async function handleCached(deps: RegistryDeps, path: OciPath & { name: string }, route: CachedRepository, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const { store, cache } = deps;
  const method = request.method;
  if (method !== 'GET' && method !== 'HEAD') throw new OciError('UNSUPPORTED', `${path.name} is a cache of ${route.remote.url}: it takes no ${method}`);
  switch (path.kind) {
    case 'manifest': {
      const reference = parseReference(path.reference);
      const { manifest, stale } = await cache.manifest(path.name, route, reference);
      if (stale) reply.header('warning', '110 - "Response is Stale"');
      return sendManifest(deps, request, reply, manifest, 'tag' in reference);
    }
    case 'blob': {
      const blob = await cache.blob(path.name, route, parseDigest(path.digest));
      return sendBlob(request, reply, store.blobs, blob, { headers: { ...apiVersion, 'content-type': 'application/octet-stream', 'docker-content-digest': digestOf(blob.sha256) } });
    }
    case 'tags':
      return sendTags(request, reply, path.name, await cache.tags(path.name, route));
    default:
      throw new OciError('UNSUPPORTED', `${path.name} is a cache of ${route.remote.url}: it takes no ${method} here`);
  }
}

function sendTags(request: FastifyRequest, reply: FastifyReply, name: string, tags: string[]): FastifyReply {
  const q = queryOf(request);
  const n = one(q.n) === undefined ? undefined : Number(one(q.n));
  if (n !== undefined && (!Number.isSafeInteger(n) || n < 0)) throw new OciError('UNSUPPORTED', 'n must be a whole number');
  const { items, more } = page(tags, (t) => t, n, one(q.last));
  if (more) reply.header('link', `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(items.at(-1)!)}>; rel="next"`);
  return reply.headers(apiVersion).send({ name, tags: items });
}

async function handle(deps: RegistryDeps, path: OciPath, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const { store, auth } = deps;
  const method = request.method;
  const notAllowed = () => new OciError('UNSUPPORTED', `${method} is not allowed here`);
  if ('name' in path) {
    // Every read needs the right to pull (anyone's, but for a private repository).
    if (method === 'GET' || method === 'HEAD') await authorize(auth, request, path.name, 'pull');
    const route = await deps.cache.route(path.name);
    if (route) return handleCached(deps, path, route, request, reply);
  }
  switch (path.kind) {
    case 'base':
      if (!(await authenticated(auth, request))) throw new OciError('UNAUTHORIZED', 'a token is needed: get one at the realm of the challenge');
      return reply.headers(apiVersion).send({});
    case 'token':
      return reply.headers({ 'cache-control': 'no-store' }).send(await issueToken(auth, request));
    case 'catalog': {
      const q = queryOf(request);
      const n = one(q.n) === undefined ? undefined : Number(one(q.n));
      const visible = (await store.meta.ociRepositories()).filter((r) => isPublicRepository(auth, r));
      const { items, more } = page(visible, (r) => r, n, one(q.last));
      if (more) reply.header('link', `</v2/_catalog?n=${n}&last=${encodeURIComponent(items.at(-1)!)}>; rel="next"`);
      return reply.headers(apiVersion).send({ repositories: items });
    }
    case 'blob': {
      // A digest of another algorithm (sha512) names nothing stored here: unknown, not invalid.
      const sha256 = readDigest(path.digest);
      const unknown = () => new OciError('BLOB_UNKNOWN', `blob ${path.digest} is not in ${path.name}`);
      if (method === 'DELETE') {
        await authorize(auth, request, path.name, 'delete');
        if (sha256 === undefined || !(await store.meta.unlinkOciBlob(path.name, sha256))) throw unknown();
        return reply.code(202).headers({ ...apiVersion, 'content-length': '0' }).send();
      }
      if (method !== 'GET' && method !== 'HEAD') throw notAllowed();
      const blob = sha256 === undefined ? undefined : await repositoryBlob(store, path.name, sha256);
      if (!blob) throw unknown();
      return sendBlob(request, reply, store.blobs, blob, { headers: { ...apiVersion, 'content-type': 'application/octet-stream', 'docker-content-digest': digestOf(blob.sha256) } });
    }
    case 'uploads': {
      if (method !== 'POST') throw notAllowed();
      await authorize(auth, request, path.name, 'push');
      const q = queryOf(request);
      const mayRead = (repository: string) => authorize(auth, request, repository, 'pull').then(() => true, () => false);
      const mount = one(q.mount);
      const from = one(q.from);
      if (mount !== undefined && from !== undefined) {
        // From a repository that holds it and this caller may read; else an upload starts.
        const sha256 = readDigest(mount);
        if (sha256 !== undefined && isRepositoryName(from) && (await mayRead(from)) && (await mountBlob(store, path.name, from, sha256))) return blobCreated(reply, path.name, sha256);
      }
      const whole = one(q.digest);
      if (whole !== undefined) return blobCreated(reply, path.name, (await uploadWhole(store, path.name, parseDigest(whole), bodyOf(request))).sha256);
      return uploadAnswer(reply, 202, path.name, await startUpload(store), 0);
    }
    case 'upload': {
      await authorize(auth, request, path.name, 'push');
      if (method === 'GET') return uploadAnswer(reply, 204, path.name, path.id, await uploadSize(store, path.id));
      if (method === 'PATCH') return uploadAnswer(reply, 202, path.name, path.id, await appendUpload(store, path.id, bodyOf(request), chunkStart(request)));
      if (method === 'PUT') {
        const digest = one(queryOf(request).digest);
        if (digest === undefined) throw new OciError('DIGEST_INVALID', 'the digest query parameter is required');
        // A last chunk sent with its range must start where the upload ends, as a PATCH must.
        return blobCreated(reply, path.name, (await finishUpload(store, path.name, path.id, parseDigest(digest), bodyOf(request), chunkStart(request))).sha256);
      }
      if (method === 'DELETE') {
        await cancelUpload(store, path.id);
        return reply.code(204).headers(apiVersion).send();
      }
      throw notAllowed();
    }
    case 'manifest': {
      if (method === 'GET' || method === 'HEAD' || method === 'DELETE') {
        // A digest of another algorithm names no manifest stored here: unknown (404), not invalid.
        if (readReference(path.reference) === undefined) throw new OciError('MANIFEST_UNKNOWN', `manifest ${path.reference} is not in ${path.name}`);
      }
      const reference = parseReference(path.reference);
      if (method === 'GET' || method === 'HEAD') {
        return sendManifest(deps, request, reply, await manifestOf(store, path.name, reference), 'tag' in reference);
      }
      if (method === 'PUT') {
        await authorize(auth, request, path.name, 'push');
        const manifest = await pushManifest(store, path.name, reference, await manifestBytes(request), request.headers['content-type']);
        deps.counts.pushes++;
        if (manifest.subject) reply.header('oci-subject', digestOf(manifest.subject));
        return reply.code(201).headers({ ...apiVersion, location: `/v2/${path.name}/manifests/${digestOf(manifest.sha256)}`, 'docker-content-digest': digestOf(manifest.sha256), 'content-length': '0' }).send();
      }
      if (method === 'DELETE') {
        await authorize(auth, request, path.name, 'delete');
        if ('tag' in reference) await store.meta.deleteOciTag(path.name, reference.tag);
        else await store.meta.deleteOciManifest(path.name, reference.sha256);
        return reply.code(202).headers({ ...apiVersion, 'content-length': '0' }).send();
      }
      throw notAllowed();
    }
    case 'tags': {
      if (method !== 'GET' && method !== 'HEAD') throw notAllowed();
      const tags = await store.meta.ociTags(path.name);
      if (!tags.length && !(await store.meta.ociRepositories()).includes(path.name)) throw new OciError('NAME_UNKNOWN', `no repository ${path.name}`);
      return sendTags(request, reply, path.name, tags);
    }
    case 'referrers': {
      if (method !== 'GET') throw notAllowed();
      const sha256 = readDigest(path.digest);
      const filter = one(queryOf(request).artifactType);
      const referrers = (sha256 === undefined ? [] : await store.meta.ociReferrers(path.name, sha256)).filter((m) => filter === undefined || m.artifactType === filter);
      if (filter !== undefined) reply.header('oci-filters-applied', 'artifactType');
      // Bytes, not an object: the framework would add "; charset=utf-8" to the media type.
      return reply
        .headers({ ...apiVersion, 'content-type': 'application/vnd.oci.image.index.v1+json' })
        .send(jsonBytes({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: referrers.map((m) => ({
            mediaType: m.mediaType,
            digest: digestOf(m.sha256),
            size: m.size,
            ...(m.artifactType ? { artifactType: m.artifactType } : {}),
            ...(Object.keys(m.annotations).length ? { annotations: m.annotations } : {}),
          })),
        }));
    }
  }
}

export function ociRoutes(app: FastifyInstance, given: Omit<RegistryDeps, 'manifests'>) {
  const deps: RegistryDeps = { ...given, manifests: new ManifestBytes() };
  app.register(async (registry) => {
    // Bodies are the handlers' to read, as streams, whatever their type.
    registry.removeAllContentTypeParsers();
    registry.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    registry.route({
      method: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'],
      url: '/v2/*',
      exposeHeadRoute: false,
      handler: async (request, reply) => {
        const path = parseOciPath(pathOf(request));
        if (!path) throw new OciError('NAME_UNKNOWN', 'not a registry path');
        return handle(deps, path, request, reply);
      },
    });
    registry.route({ method: ['GET', 'HEAD'], url: '/v2', exposeHeadRoute: false, handler: async (request, reply) => handle(deps, { kind: 'base' }, request, reply) });
  });
}
