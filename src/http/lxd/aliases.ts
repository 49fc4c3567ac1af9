/** The image aliases resource: `/1.0/images/aliases` and `/1.0/images/aliases/NAME`. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Store } from '../../core/context.ts';
import { createAlias, deleteAlias, renameAlias } from '../../core/aliases.ts';
import { visibleAlias } from '../../core/visibility.ts';
import type { Alias } from '../../domain/image.ts';
import { recursive, requireTrusted, viewerOf } from './caller.ts';
import { sync } from './envelope.ts';
import { aliasCreateBody, aliasRenameBody, validBody } from './schemas.ts';

/** An alias name from the path: Fastify has decoded it once, which is all it was encoded. */
const aliasName = (request: FastifyRequest) => (request.params as { '*': string })['*'];

const apiAlias = (a: Alias) => ({ name: a.name, description: a.description, target: a.fingerprint, type: a.type });

export function aliasRoutes(app: FastifyInstance, deps: { store: Store }) {
  const { store } = deps;

  app.get('/1.0/images/aliases', async (request, reply) => {
    await requireTrusted(store, request);
    const aliases = await store.meta.listAliases();
    return sync(reply, recursive(request) ? aliases.map(apiAlias) : aliases.map((a) => `/1.0/images/aliases/${encodeURIComponent(a.name)}`));
  });

  app.get('/1.0/images/aliases/*', async (request, reply) => {
    const alias = await visibleAlias(store, await viewerOf(store, request), aliasName(request));
    return sync(reply, apiAlias(alias));
  });

  app.post('/1.0/images/aliases', { schema: { body: aliasCreateBody }, attachValidation: true }, async (request, reply) => {
    await requireTrusted(store, request);
    const body = validBody<{ name: string; target: string; description?: string }>(request);
    await createAlias(store, body.name, body.target, body.description ?? '');
    return sync(reply, {});
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
    return sync(reply, {});
  });
}
