/**
 * The LXD/Incus REST view of the store: the image endpoints a public remote answers, plus what
 * trusted clients use. Routes and envelopes follow what a real LXD 5.0 daemon answers.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hostname } from 'node:os';
import type { TLSSocket } from 'node:tls';
import type { Store } from '../../core/context.ts';
import { PushGrants, type ImageSecrets } from '../../core/secrets.ts';
import type { GrantStore } from '../../meta/grants.ts';
import { importLxdImage } from '../../mirror/copy.ts';
import { isTrusted, joinWithSecret, parseCertificate } from '../../core/trust.ts';
import { certificateFingerprint } from '../../domain/fingerprint.ts';
import { visibleAlias, visibleImage, visibleImages, type Viewer } from '../../core/visibility.ts';
import { deleteImages, editImage, exportedFiles } from '../../core/images.ts';
import { importImage } from '../../core/import.ts';
import { createAlias, deleteAlias, renameAlias } from '../../core/aliases.ts';
import type { IngestSource } from '../../core/ingest.ts';
import { uploadHeaders } from './upload.ts';
import { imageBodySources } from '../../transfer/image-body.ts';
import { toApiImage } from '../../domain/lxd-api.ts';
import { matchesApiFilter, parseFilter } from '../../domain/api-filter.ts';
import { knownArchitectures } from '../../domain/architecture.ts';
import type { TlsIdentity } from '../../tls.ts';
import { sendPieces } from '../send-blob.ts';
import { aliasCreateBody, aliasRenameBody, certificatesPostBody, imagePutBody, imagesPostBody, validBody } from './schemas.ts';
import type { OpenedBlob } from '../../blob/store.ts';
import type { IndexPublisher } from '../../core/publish.ts';
import { asyncResponse, lxdError, operation, sync, syncEnvelope } from './envelope.ts';
import { Operations, operationSecretMatches } from './operations.ts';
import { AppError, ErrorCodes } from '../../errors.ts';

/** What wharf implements of the API extensions the clients check. */
export const apiExtensions = ['etag', 'patch', 'image_create_aliases', 'image_types', 'images_expiry', 'image_profiles', 'api_filtering', 'certificate_token'];

export interface LxdDeps {
  store: Store;
  secrets: ImageSecrets;
  grants: GrantStore;
  tls: TlsIdentity;
  version: string;
  maxUploadSize: number;
  publisher: IndexPublisher;
}

interface ImagesPost {
  source?: { type?: string; mode?: string; server?: string; protocol?: string; certificate?: string; fingerprint?: string; alias?: string; secret?: string };
  aliases?: { name?: string }[];
  public?: boolean;
  properties?: Record<string, string>;
  auto_update?: boolean;
}

type Query = { recursion?: string; filter?: string; secret?: string; project?: string };

function clientCertificate(request: FastifyRequest) {
  const socket = request.raw.socket as TLSSocket;
  if (!socket.encrypted) return undefined;
  const peer = socket.getPeerCertificate();
  return peer?.raw ? parseCertificate(peer.raw) : undefined;
}

/** An alias name from the path: Fastify has decoded it once, which is all it was encoded. */
const wildcard = (request: FastifyRequest) => (request.params as { '*': string })['*'];

async function viewerOf(store: Store, request: FastifyRequest): Promise<Viewer> {
  const cert = clientCertificate(request);
  const trusted = await isTrusted(store, cert && certificateFingerprint(cert));
  // A repeated ?secret= arrives as a list: that is no secret.
  const secret: unknown = (request.query as Query).secret;
  return { trusted, secret: typeof secret === 'string' ? secret : undefined };
}

export function lxdRoutes(app: FastifyInstance, deps: LxdDeps) {
  const { store, secrets } = deps;
  const operations = new Operations(deps.grants);
  const pushGrants = new PushGrants(deps.grants);

  // Only the default project exists; a client that asks for another gets what LXD says.
  app.addHook('preHandler', async (request, reply) => {
    const project = (request.query as Query).project;
    if (request.url.startsWith('/1.0') && project && project !== 'default') return lxdError(reply, 404, 'Project not found');
    return undefined;
  });

  app.get('/', async (_req, reply) => sync(reply, ['/1.0']));

  app.get('/1.0', async (request, reply) => {
    const viewer = await viewerOf(store, request);
    const base = { api_extensions: apiExtensions, api_status: 'stable', api_version: '1.0', auth_methods: ['tls'] };
    if (!viewer.trusted) return sync(reply, { ...base, auth: 'untrusted', public: false });
    return sync(reply, {
      ...base,
      auth: 'trusted',
      public: false,
      config: {},
      environment: {
        architectures: ['x86_64', 'i686'].filter((a) => knownArchitectures.includes(a)),
        certificate: deps.tls.cert,
        certificate_fingerprint: deps.tls.fingerprint,
        driver: '',
        driver_version: '',
        firewall: '',
        kernel: process.platform,
        kernel_architecture: process.arch === 'x64' ? 'x86_64' : process.arch,
        kernel_version: '',
        server: 'wharf',
        server_pid: process.pid,
        server_version: deps.version,
        server_clustered: false,
        server_name: hostname(),
        project: 'default',
        storage: '',
        storage_version: '',
      },
    });
  });

  app.get('/1.0/images', async (request, reply) => {
    const query = request.query as Query;
    const viewer = await viewerOf(store, request);
    const recursion = Boolean(query.recursion && query.recursion !== '0');
    if (!query.filter) {
      // The common case is served from bytes rendered when the store last changed.
      const list = await deps.publisher.apiImageList(viewer.trusted ? 'all' : 'public', recursion);
      return reply.code(200).header('content-type', 'application/json').send(syncEnvelope(list));
    }
    const filter = parseFilter(query.filter);
    const images = (await visibleImages(store, viewer)).map((i) => toApiImage(i, i.aliases)).filter((i) => matchesApiFilter(filter, i));
    return sync(reply, recursion ? images : images.map((i) => `/1.0/images/${i.fingerprint}`));
  });

  app.get('/1.0/images/aliases', async (request, reply) => {
    const viewer = await viewerOf(store, request);
    if (!viewer.trusted) return lxdError(reply, 403, 'not authorized');
    const aliases = await store.meta.listAliases();
    const recursion = (request.query as Query).recursion;
    return sync(
      reply,
      recursion && recursion !== '0'
        ? aliases.map((a) => ({ name: a.name, description: a.description, target: a.fingerprint, type: a.type }))
        : aliases.map((a) => `/1.0/images/aliases/${encodeURIComponent(a.name)}`),
    );
  });

  app.get('/1.0/images/aliases/*', async (request, reply) => {
    const name = wildcard(request);
    const alias = await visibleAlias(store, await viewerOf(store, request), name);
    return sync(reply, { name: alias.name, description: alias.description, target: alias.fingerprint, type: alias.type });
  });

  app.get('/1.0/images/:fingerprint', async (request, reply) => {
    const image = await visibleImage(store, await viewerOf(store, request), secrets, (request.params as { fingerprint: string }).fingerprint);
    return sync(reply, toApiImage(image, image.aliases));
  });

  // HEAD declared here: the route Fastify would derive from GET sends Content-Length 0.
  app.route({
    method: ['GET', 'HEAD'],
    url: '/1.0/images/:fingerprint/export',
    handler: async (request, reply) => {
      const viewer = await viewerOf(store, request);
      const image = await visibleImage(store, viewer, secrets, (request.params as { fingerprint: string }).fingerprint);
      // A secret opens one download at a time, spent once a response went out whole; HEAD is free.
      const secret = !viewer.trusted && !image.public && request.method === 'GET' ? viewer.secret : undefined;
      if (secret) {
        if (!(await secrets.claim(secret))) throw new AppError(ErrorCodes.conflict, 'Another download is using this secret');
        const res = reply.raw;
        // Spent as soon as the whole body was handed over ('finish'), or, at 'close', if it was
        // all written out (a client that reads the last byte and hangs up can beat 'finish').
        let settled = false;
        const settle = (completed: boolean) => {
          if (settled) return;
          settled = true;
          secrets.settle(secret, completed).catch((err: unknown) => store.log.error('settling a secret failed', { err }));
        };
        res.once('finish', () => settle(res.statusCode === 200));
        res.once('close', () => settle(res.statusCode === 200 && res.writableEnded));
      }
      return sendExport(request, reply, store, image);
    },
  });

  app.post('/1.0/images/:fingerprint/secret', async (request, reply) => {
    const viewer = await viewerOf(store, request);
    if (!viewer.trusted) return lxdError(reply, 403, 'not authorized');
    const image = await visibleImage(store, viewer, secrets, (request.params as { fingerprint: string }).fingerprint);
    const secret = await secrets.issue(image.fingerprint);
    const op = operation({
      class: 'token',
      description: 'Downloading image',
      status: 'Running',
      status_code: 103,
      resources: { images: [`/1.0/images/${image.fingerprint}`] },
      metadata: { secret },
    });
    await operations.add(op, Date.now() + secrets.ttlMs);
    return asyncResponse(reply, op);
  });

  app.post('/1.0/certificates', { schema: { body: certificatesPostBody }, attachValidation: true }, async (request, reply) => {
    const cert = clientCertificate(request);
    if (cert && (await isTrusted(store, certificateFingerprint(cert)))) return sync(reply, {});
    const body = validBody<{ password?: string; trust_token?: string; name?: string }>(request);
    const presented = body.trust_token || body.password;
    if (!presented) return lxdError(reply, 403, 'not authorized');
    await joinWithSecret(store, presented, cert);
    return sync(reply, {});
  });

  // Uploads are streamed into the import, never parsed or buffered by the framework.
  app.addContentTypeParser(['application/octet-stream', 'multipart/form-data'], (_request, payload, done) => done(null, payload));

  const requireTrusted = async (request: FastifyRequest) => {
    const viewer = await viewerOf(store, request);
    if (!viewer.trusted) throw new AppError(ErrorCodes.forbidden, 'not authorized');
    return viewer;
  };
  const finished = async (reply: FastifyReply, description: string, resources: Record<string, string[]> | null, metadata: Record<string, unknown> | null) => {
    const op = operation({ class: 'task', description, status: 'Success', status_code: 200, resources, metadata });
    await operations.add(op);
    return asyncResponse(reply, op);
  };

  /**
   * The finished operation of an upload or pull: what the clients read the fingerprint from. An
   * untrusted push keeps its secret in it, as LXD does: the pushing daemon waits on the operation
   * with that secret.
   */
  const imageCreated = (reply: FastifyReply, image: { fingerprint: string; size: number }, secret?: string) =>
    finished(
      reply,
      'Downloading image',
      { images: [`/1.0/images/${image.fingerprint}`] },
      { fingerprint: image.fingerprint, size: String(image.size), ...(secret ? { secret } : {}) },
    );

  // Only a JSON body has a schema: uploads are streams.
  app.post('/1.0/images', { schema: { body: { content: { 'application/json': { schema: imagesPostBody } } } }, attachValidation: true }, async (request, reply) => {
    const type = String(request.headers['content-type'] ?? '');
    if (type.startsWith('application/json')) return createFromSource(request, reply);
    const headers = uploadHeaders(request);
    const viewer = await viewerOf(store, request);
    // An untrusted upload must carry the secret of a push grant for exactly this fingerprint.
    const grant = viewer.trusted ? undefined : await pushGrants.redeem(headers.secret, headers.fingerprint);
    if (!viewer.trusted && !grant) throw new AppError(ErrorCodes.forbidden, 'not authorized');
    const sources = await imageBodySources(request.raw, deps.maxUploadSize, headers.filename);
    const image = await importImage(store, {
      sources: sources as [IngestSource] | [IngestSource, IngestSource],
      public: grant?.public ?? headers.public,
      properties: { ...headers.properties, ...grant?.properties },
      aliases: [...headers.aliases, ...(grant?.aliases ?? [])],
      ...(headers.fingerprint ? { expectedFingerprint: headers.fingerprint } : {}),
    });
    return imageCreated(reply, image, grant ? headers.secret : undefined);
  });

  /** POST /1.0/images with a JSON source: pull from another server, or prepare a push. */
  const createFromSource = async (request: FastifyRequest, reply: FastifyReply) => {
    await requireTrusted(request);
    const body = validBody<ImagesPost>(request);
    const source = body.source ?? {};
    const aliases = (body.aliases ?? []).map((a) => a.name).filter((n): n is string => typeof n === 'string');
    if (source.mode === 'push') {
      if (!source.fingerprint) return lxdError(reply, 400, 'A push needs the fingerprint of the image');
      const secret = await pushGrants.issue({ fingerprint: source.fingerprint, aliases, public: body.public ?? false, properties: body.properties ?? {} });
      const op = operation({ class: 'token', description: 'Downloading image', status: 'Running', status_code: 103, resources: null, metadata: { secret, fingerprint: source.fingerprint } });
      await operations.add(op, Date.now() + pushGrants.ttlMs);
      return asyncResponse(reply, op);
    }
    if (source.type !== 'image' || (source.mode ?? 'pull') !== 'pull' || !source.server) {
      return lxdError(reply, 400, 'Unsupported image source: wharf takes uploads, pushes, and pulls from another server');
    }
    if (source.protocol && source.protocol !== 'lxd' && source.protocol !== 'incus') {
      return lxdError(reply, 501, `Pulling over ${source.protocol} is not supported yet`);
    }
    const image = await importLxdImage(
      store,
      { server: source.server, certificate: source.certificate, fingerprint: source.fingerprint, alias: source.alias, secret: source.secret },
      { aliases, public: body.public ?? false, autoUpdate: body.auto_update ?? false, properties: body.properties ?? {}, limit: deps.maxUploadSize },
    );
    return imageCreated(reply, image);
  };

  app.route({
    method: ['PUT', 'PATCH'],
    url: '/1.0/images/:fingerprint',
    schema: { body: imagePutBody },
    attachValidation: true,
    handler: async (request, reply) => {
      const viewer = await requireTrusted(request);
      const image = await visibleImage(store, viewer, secrets, (request.params as { fingerprint: string }).fingerprint);
      const body = validBody<{ public?: boolean; properties?: Record<string, string>; expires_at?: string; auto_update?: boolean }>(request);
      const put = request.method === 'PUT';
      const expires = body.expires_at === undefined ? undefined : body.expires_at.startsWith('0001-') ? null : new Date(body.expires_at).toISOString();
      await editImage(store, image.fingerprint, {
        ...(body.public !== undefined || put ? { public: body.public ?? false } : {}),
        ...(body.properties !== undefined || put ? { properties: put ? (body.properties ?? {}) : { ...image.properties, ...body.properties } } : {}),
        ...(expires !== undefined ? { expiresAt: expires } : {}),
        ...(body.auto_update !== undefined ? { autoUpdate: body.auto_update } : {}),
      });
      return sync(reply, {});
    },
  });

  app.delete('/1.0/images/:fingerprint', async (request, reply) => {
    const viewer = await requireTrusted(request);
    const image = await visibleImage(store, viewer, secrets, (request.params as { fingerprint: string }).fingerprint);
    await deleteImages(store, [image.fingerprint]);
    return finished(reply, 'Deleting image', { images: [`/1.0/images/${image.fingerprint}`] }, null);
  });

  app.post('/1.0/images/aliases', { schema: { body: aliasCreateBody }, attachValidation: true }, async (request, reply) => {
    await requireTrusted(request);
    const body = validBody<{ name: string; target: string; description?: string }>(request);
    await createAlias(store, body.name, body.target, body.description ?? '');
    return sync(reply, {});
  });

  app.delete('/1.0/images/aliases/*', async (request, reply) => {
    await requireTrusted(request);
    await deleteAlias(store, wildcard(request));
    return sync(reply, {});
  });

  app.post('/1.0/images/aliases/*', { schema: { body: aliasRenameBody }, attachValidation: true }, async (request, reply) => {
    await requireTrusted(request);
    const body = validBody<{ name: string }>(request);
    await renameAlias(store, wildcard(request), body.name);
    return sync(reply, {});
  });

  // As LXD answers it: untrusted callers need the operation's own secret (a daemon pushing an
  // image waits on the push token this way), and get 403 without one before any lookup.
  app.get('/1.0/operations/:id/wait', async (request, reply) => {
    const viewer = await viewerOf(store, request);
    if (!viewer.trusted && !viewer.secret) return lxdError(reply, 403, 'not authorized');
    const op = await operations.get((request.params as { id: string }).id);
    if (!op) return lxdError(reply, 404, 'Operation not found');
    if (!viewer.trusted && !operationSecretMatches(op, viewer.secret)) return lxdError(reply, 403, 'not authorized');
    return sync(reply, op);
  });

  app.get('/1.0/certificates', async (request, reply) => {
    if (!(await viewerOf(store, request)).trusted) return lxdError(reply, 403, 'not authorized');
    const certs = await store.meta.listCertificates();
    return sync(reply, certs.map((c) => `/1.0/certificates/${c.fingerprint}`));
  });

  app.get('/1.0/operations/:id', async (request, reply) => {
    const op = await operations.get((request.params as { id: string }).id);
    if (!op || !(await viewerOf(store, request)).trusted) return lxdError(reply, 404, 'Operation not found');
    return sync(reply, op);
  });
}

/**
 * An image as LXD exports it: a unified file with its name in Content-Disposition, or a split
 * image as multipart/form-data with `metadata` then `rootfs` (`rootfs.img` for a VM) parts.
 */
async function sendExport(request: FastifyRequest, reply: FastifyReply, store: Store, image: Awaited<ReturnType<typeof visibleImage>>) {
  const files = exportedFiles(image);
  reply.header('x-content-type-options', 'nosniff');
  if (files.length === 1) {
    const [file] = files as [(typeof files)[0]];
    reply
      .header('content-type', 'application/octet-stream')
      .header('content-disposition', `inline;filename=${file.name}`)
      .header('content-length', String(file.blob.size));
    if (request.method === 'HEAD') return reply.send();
    return sendPieces(reply, [await store.blobs.openCopy(file.blob.sha256)]);
  }
  const boundary = `wharf-${image.fingerprint.slice(0, 24)}`;
  const partHeader = (name: string, filename: string, first: boolean) =>
    Buffer.from(
      `${first ? '' : '\r\n'}--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
  const parts = files.map((f, i) => ({
    header: partHeader(f.role === 'metadata' ? 'metadata' : image.type === 'virtual-machine' ? 'rootfs.img' : 'rootfs', f.name, i === 0),
    file: f,
  }));
  const trailer = Buffer.from(`\r\n--${boundary}--\r\n`);
  const length = parts.reduce((n, p) => n + p.header.length + p.file.blob.size, trailer.length);
  reply.header('content-type', `multipart/form-data; boundary=${boundary}`).header('content-length', String(length));
  if (request.method === 'HEAD') return reply.send();
  // Open both before the headers go out, so a missing file is an error response, not a cut body;
  // if the second cannot be opened, the first is released.
  const copies: OpenedBlob[] = [];
  try {
    for (const part of parts) copies.push(await store.blobs.openCopy(part.file.blob.sha256));
  } catch (err) {
    await Promise.all(copies.map((c) => c.close()));
    throw err;
  }
  return sendPieces(reply, [...parts.flatMap((part, i) => [part.header, copies[i]!]), trailer]);
}

export function isLxdPath(url: string) {
  return url === '/' || url.startsWith('/1.0');
}

export function lxdErrorFor(reply: FastifyReply, status: number, err: unknown) {
  const message = err instanceof AppError || status < 500 ? (err as Error).message : 'Internal server error';
  return lxdError(reply, status, message);
}
