/** The image aliases resource: `/1.0/images/aliases` and `/1.0/images/aliases/NAME`. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { aliasEtag, toApiAlias } from '../../domain/lxd-api.ts';
import type { Store } from '../../core/context.ts';
import { createAlias, deleteAlias, renameAlias } from '../../core/aliases.ts';
import { visibleAlias, visibleImages } from '../../core/visibility.ts';
import { recursive, requireTrusted, viewerOf } from './caller.ts';
import { sync } from './envelope.ts';
import { aliasCreateBody, aliasRenameBody, validBody } from './schemas.ts';

/** An alias name from the path: Fastify has decoded it once, which is all it was encoded. */
const aliasName = (request: FastifyRequest) => (request.params as { '*': string })['*'];

/** Where a created or renamed alias now lives (incusd answers 201 with it). */
const created = (reply: FastifyReply, name: string) => sync(reply.header('location', `/1.0/images/aliases/${encodeURIComponent(name)}`), null, 201);

export function aliasRoutes(app: FastifyInstance, deps: { store: Store }) {
  const { store } = deps;

  app.get('/1.0/images/aliases', async (request, reply) => {
    const viewer = await requireTrusted(store, request, { reading: true });
    const all = await store.meta.listAliases();
    const visible = viewer.channels && new Set((await visibleImages(store, viewer)).map((i) => i.fingerprint));
    const aliases = visible ? all.filter((a) => visible.has(a.fingerprint)) : all;
    return sync(reply, recursive(request) ? aliases.map(toApiAlias) : aliases.map((a) => `/1.0/images/aliases/${encodeURIComponent(a.name)}`));
  });

  app.get('/1.0/images/aliases/*', async (request, reply) => {
    const alias = await visibleAlias(store, await viewerOf(store, request), aliasName(request));
    return sync(reply.header('etag', aliasEtag(alias)), toApiAlias(alias));
  });

  app.post('/1.0/images/aliases', { schema: { body: aliasCreateBody }, attachValidation: true }, async (request, reply) => {
    await requireTrusted(store, request);
    const body = validBody<{ name: string; target: string; description?: string }>(request);
    await createAlias(store, body.name, body.target, body.description ?? '');
    return created(reply, body.name);
  });

  app.delete('/1.0/images/aliases/*', async (request, reply) => {
    await requireTrusted(store, request);
    await deleteAlias(store, aliasName(request));
    return sync(reply, {});
  });

  app.post('/1.0/images/aliases/*', { schema: { body: aliasRenameBody }, attachValidation: true }, async (request, reply) => {
    await requireTrusted(store, request);
    const body = validBody<{ name: string }>(request);
    await renameAlias(store, aliasName(request), body.name);
    return created(reply, body.name);
  });
}
