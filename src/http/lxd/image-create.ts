/**
 * `POST /1.0/images`: an upload (the raw body, or multipart), a push prepared by a trusted
 * client (a token the pushing daemon's untrusted upload then presents), or a pull from another
 * server (LXD protocol or simplestreams). Every one has finished when the answer goes out: the operation is over.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Store } from '../../core/context.ts';
import { importImage } from '../../core/import.ts';
import type { IngestSource } from '../../core/ingest.ts';
import type { PushGrants } from '../../core/secrets.ts';
import { AppError, ErrorCodes } from '../../errors.ts';
import { bearerToken, globsMatch } from '../../domain/push-token.ts';
import { stagingChannel } from '../../domain/channel.ts';
import { livePushToken } from '../../core/push-tokens.ts';
import { pullImage } from '../../mirror/copy.ts';
import { imageBodySources } from '../../transfer/image-body.ts';
import { notAuthorized, requireTrusted, viewerOf } from './caller.ts';
import { asyncResponse, operation } from './envelope.ts';
import { finishedTask, type Operations } from './operations.ts';
import { imagesPostBody, validBody } from './schemas.ts';
import { uploadHeaders } from './upload.ts';

interface ImagesPost {
  source?: { type?: string; mode?: string; server?: string; protocol?: string; certificate?: string; fingerprint?: string; alias?: string; secret?: string; image_type?: string };
  aliases?: { name?: string }[];
  public?: boolean;
  properties?: Record<string, string>;
  auto_update?: boolean;
}

export function imageCreateRoutes(app: FastifyInstance, deps: { store: Store; operations: Operations; pushGrants: PushGrants; maxUploadSize: number }) {
  const { store, operations, pushGrants } = deps;

  // Uploads are streamed into the import, never parsed or buffered by the framework.
  app.addContentTypeParser(['application/octet-stream', 'multipart/form-data'], (_request, payload, done) => done(null, payload));

  /**
   * The finished operation of an upload or pull: what the clients read the fingerprint from. An
   * untrusted push keeps its secret in it, as LXD does: the pushing daemon waits on the operation
   * with that secret.
   */
  const imageCreated = (reply: FastifyReply, image: { fingerprint: string; size: number }, secret?: string) =>
    finishedTask(
      operations,
      reply,
      'Downloading image',
      { images: [`/1.0/images/${image.fingerprint}`] },
      { fingerprint: image.fingerprint, size: String(image.size), ...(secret ? { secret } : {}) },
    );

  /** A JSON body: pull from another server, or prepare a push. */
  const createFromSource = async (request: FastifyRequest, reply: FastifyReply) => {
    await requireTrusted(store, request);
    const body = validBody<ImagesPost>(request);
    const source = body.source ?? {};
    const aliases = (body.aliases ?? []).map((a) => a.name).filter((n): n is string => typeof n === 'string');
    if (source.mode === 'push') {
      if (!source.fingerprint) throw new AppError(ErrorCodes.invalidArgument, 'A push needs the fingerprint of the image');
      const secret = await pushGrants.issue({ fingerprint: source.fingerprint, aliases, public: body.public ?? false, properties: body.properties ?? {} });
      const op = operation({ class: 'token', description: 'Downloading image', status: 'Running', status_code: 103, resources: null, metadata: { secret, fingerprint: source.fingerprint } });
      await operations.add(op, pushGrants.ttlMs);
      return asyncResponse(reply, op);
    }
    if (source.type !== 'image' || (source.mode ?? 'pull') !== 'pull' || !source.server) {
      throw new AppError(ErrorCodes.invalidArgument, 'Unsupported image source: wharf takes uploads, pushes, and pulls from another server');
    }
    // What the other server gets wrong is its fault (502), not the caller's: see upstreamImport.
    const image = await pullImage(
      store,
      { server: source.server, protocol: source.protocol, imageType: source.image_type, certificate: source.certificate, fingerprint: source.fingerprint, alias: source.alias, secret: source.secret },
      { aliases, public: body.public ?? false, autoUpdate: body.auto_update ?? false, properties: body.properties ?? {}, limit: deps.maxUploadSize },
    );
    return imageCreated(reply, image);
  };

  // Only a JSON body has a schema: uploads are streams.
  app.post('/1.0/images', { schema: { body: { content: { 'application/json': { schema: imagesPostBody } } } }, attachValidation: true }, async (request, reply) => {
    const type = String(request.headers['content-type'] ?? '');
    if (type.startsWith('application/json')) return createFromSource(request, reply);
    const headers = uploadHeaders(request);
    const viewer = await viewerOf(store, request);
    // An untrusted upload must carry the secret of a push grant for exactly this fingerprint; a
    // trusted one may (a push copy between trusted servers), and its grant applies then too.
    const grant = headers.secret ? await pushGrants.redeem(headers.secret, headers.fingerprint) : undefined;
    // A builder's push token (Authorization: Bearer): its products only, into staging, private.
    const bearer = bearerToken(request.headers.authorization);
    const builder = bearer !== undefined && !viewer.trusted && !grant ? await livePushToken(store, bearer) : undefined;
    if (!viewer.trusted && !grant && !builder) throw notAuthorized();
    // A certificate restricted to channels pushes into staging, if that is one of them; else nothing.
    const staging = builder !== undefined || (viewer.channels !== undefined && !grant);
    if (staging && !builder && !viewer.channels!.includes(stagingChannel)) throw new AppError(ErrorCodes.forbidden, `This certificate may read the channels ${viewer.channels!.join(', ')} only`);
    const sources = await imageBodySources(request.raw, deps.maxUploadSize, headers.filename);
    if (staging) {
      const image = await importImage(store, {
        sources: sources as [IngestSource] | [IngestSource, IngestSource],
        public: false,
        channels: [stagingChannel],
        actor: builder ? `token ${builder.name}` : viewer.name,
        properties: headers.properties,
        aliases: [],
        ...(headers.fingerprint ? { expectedFingerprint: headers.fingerprint } : {}),
        admitProduct: (product) => {
          if (builder && !globsMatch(builder.globs, product)) throw new AppError(ErrorCodes.forbidden, `The push token ${builder.id} may not push ${product}`);
        },
      });
      store.log.info('image pushed into staging', { fingerprint: image.fingerprint, ...(builder ? { token: builder.id, builder: builder.name } : {}) });
      return imageCreated(reply, image);
    }
    const image = await importImage(store, {
      sources: sources as [IngestSource] | [IngestSource, IngestSource],
      public: grant?.public ?? headers.public,
      // As incusd: the upload's own properties over the grant's, the grant's aliases if it has any.
      properties: { ...grant?.properties, ...headers.properties },
      aliases: grant?.aliases.length ? grant.aliases : headers.aliases,
      actor: viewer.name ?? 'push grant',
      ...(headers.fingerprint ? { expectedFingerprint: headers.fingerprint } : {}),
    });
    return imageCreated(reply, image, grant ? headers.secret : undefined);
  });
}
