/**
 * The images resource: the list (pre-rendered, or filtered), one image, its edits and deletion,
 * and the one-time secrets that open a private image for one download. Uploads and pulls are
 * in image-create.ts, downloads in image-export.ts.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Store } from '../../core/context.ts';
import type { IndexPublisher } from '../../core/publish.ts';
import type { ImageSecrets } from '../../core/secrets.ts';
import { applyImageEdit, deleteImages } from '../../core/images.ts';
import { visibleImage, visibleImages } from '../../core/visibility.ts';
import { matchesApiFilter, parseFilter } from '../../domain/api-filter.ts';
import { imageEtag, toApiImage } from '../../domain/lxd-api.ts';
import type { Image } from '../../domain/image.ts';
import { recursive, requireTrusted, viewerOf, type Query } from './caller.ts';
import { ifMatchAllows } from '../conditional.ts';
import { AppError, ErrorCodes } from '../../errors.ts';
import { asyncResponse, operation, sync, syncEnvelope } from './envelope.ts';
import { finishedTask, type Operations } from './operations.ts';
import { imagePutBody, validBody } from './schemas.ts';

export const fingerprintParam = (request: FastifyRequest) => (request.params as { fingerprint: string }).fingerprint;

export function imageRoutes(app: FastifyInstance, deps: { store: Store; secrets: ImageSecrets; operations: Operations; publisher: IndexPublisher }) {
  const { store, secrets, operations } = deps;

  app.get('/1.0/images', async (request, reply) => {
    const query = request.query as Query;
    const viewer = await viewerOf(store, request);
    // A certificate restricted to channels sees a list of its own, made per request.
    if (!query.filter && !viewer.channels) {
      // The common case is served from bytes rendered when the store last changed.
      const list = await deps.publisher.apiImageList(viewer.trusted ? 'all' : 'public', recursive(request));
      return reply.code(200).header('content-type', 'application/json').send(syncEnvelope(list));
    }
    const filter = query.filter ? parseFilter(query.filter) : undefined;
    const images = (await visibleImages(store, viewer)).map((i) => toApiImage(i, i.aliases)).filter((i) => !filter || matchesApiFilter(filter, i));
    return sync(reply, recursive(request) ? images : images.map((i) => `/1.0/images/${i.fingerprint}`));
  });

  app.get('/1.0/images/:fingerprint', async (request, reply) => {
    const image = await visibleImage(store, await viewerOf(store, request), secrets, fingerprintParam(request));
    return sync(reply.header('etag', imageEtag(image)), toApiImage(image, image.aliases));
  });

  // A restricted certificate may: it is how lxc copies a private image it can read elsewhere.
  app.post('/1.0/images/:fingerprint/secret', async (request, reply) => {
    const viewer = await requireTrusted(store, request, { reading: true });
    const image = await visibleImage(store, viewer, secrets, fingerprintParam(request));
    const secret = await secrets.issue(image.fingerprint);
    const op = operation({
      class: 'token',
      description: 'Downloading image',
      status: 'Running',
      status_code: 103,
      resources: { images: [`/1.0/images/${image.fingerprint}`] },
      metadata: { secret },
    });
    await operations.add(op, secrets.ttlMs);
    return asyncResponse(reply, op);
  });

  app.route({
    method: ['PUT', 'PATCH'],
    url: '/1.0/images/:fingerprint',
    schema: { body: imagePutBody },
    attachValidation: true,
    handler: async (request, reply) => {
      const viewer = await requireTrusted(store, request);
      const image = await visibleImage(store, viewer, secrets, fingerprintParam(request));
      const body = validBody<Record<string, unknown>>(request);
      // An edit made from an older read of the image (the CLI sends back the ETag it got) fails,
      // also when the image changes between this check and the write (on any replica): the
      // check runs on the very read the write compares and sets against.
      const ifMatch = (current: Image) => {
        const etag = imageEtag(current);
        if (!ifMatchAllows(request.headers['if-match'], etag)) {
          throw new AppError(ErrorCodes.preconditionFailed, `ETag doesn't match: ${etag.slice(1, -1)} vs ${String(request.headers['if-match']).replace(/"/g, '')}`);
        }
      };
      // The same edit rules as `wharf image edit`. A PUT replaces the image's settings as LXD
      // does: what it leaves out goes back to its zero value (private, no properties).
      const put = request.method === 'PUT';
      await applyImageEdit(store, image.fingerprint, put ? { public: false, properties: {}, ...body } : body, put ? 'replace' : 'merge', ifMatch);
      return sync(reply, {});
    },
  });

  app.delete('/1.0/images/:fingerprint', async (request, reply) => {
    const viewer = await requireTrusted(store, request);
    const image = await visibleImage(store, viewer, secrets, fingerprintParam(request));
    await deleteImages(store, [image.fingerprint], viewer.name);
    return finishedTask(operations, reply, 'Deleting image', { images: [`/1.0/images/${image.fingerprint}`] }, null);
  });
}
