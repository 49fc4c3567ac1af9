/**
 * The web catalogue: the page at `/` for browsers (lxd/server.ts hands it over), its JSON
 * (documented in the README for other tools) and its script and stylesheet. The page and the
 * products are rendered with the index (core/publish.ts); the download counts at most every
 * 10 s, as often as the serving processes write them.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { catalogueProductsPath, type IndexPublisher } from '../core/publish.ts';
import { catalogueDownloads, flushIntervalMs } from '../core/usage.ts';
import type { UsageStore } from '../meta/usage.ts';
import type { CatalogueAssets } from '../web/assets.ts';
import { renderJson, type RenderedDocument } from '../web/rendered.ts';
import { sendRendered } from './send-rendered.ts';
import { notFound } from '../errors.ts';
import { registryCatalogue } from '../core/registry.ts';
import { isPublicRepository } from '../domain/oci.ts';
import type { Store } from '../core/context.ts';

export const catalogueDownloadsPath = '/catalogue/v1/downloads.json';
/** `?product=KEY`: the channel history of a product the catalogue shows. */
export const catalogueHistoryPath = '/catalogue/v1/history.json';
/** The OCI registry's repositories and tags, with the fingerprints Incus shows. */
export const catalogueRegistryPath = '/catalogue/v1/registry.json';

export interface CatalogueDeps {
  publisher: IndexPublisher;
  store: Store;
  /** `registry_private`: repositories the catalogue does not list. */
  registryPrivate: string[];
  usage: UsageStore;
  assets: CatalogueAssets;
}

/** Whether a request to `/` is a browser's (which asks for HTML first) rather than an API client's. */
export function wantsPage(request: FastifyRequest): boolean {
  return /\btext\/html\b/.test(String(request.headers.accept ?? ''));
}

export function sendCataloguePage(request: FastifyRequest, reply: FastifyReply, publisher: IndexPublisher): FastifyReply {
  const page = publisher.catalogueDocument('/');
  if (!page) throw notFound('No catalogue page');
  reply.header('vary', 'accept').header('x-content-type-options', 'nosniff');
  // The page runs its own script and style only.
  reply.header('content-security-policy', "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'");
  return sendRendered(request, reply, page);
}

export function catalogueRoutes(app: FastifyInstance, deps: CatalogueDeps) {
  app.route({
    method: ['GET', 'HEAD'],
    url: catalogueRegistryPath,
    handler: async (request, reply) => {
      reply.header('access-control-allow-origin', '*').header('cache-control', 'no-cache');
      // Never a private repository's name.
      return sendRendered(request, reply, renderJson(await registryCatalogue(deps.store, (name) => isPublicRepository(deps.registryPrivate, name))));
    },
  });

  app.route({
    method: ['GET', 'HEAD'],
    url: catalogueProductsPath,
    handler: async (request, reply) => {
      const doc = deps.publisher.catalogueDocument(catalogueProductsPath);
      if (!doc) return reply.callNotFound();
      reply.header('access-control-allow-origin', '*');
      return sendRendered(request, reply, doc);
    },
  });

  app.route({
    method: ['GET', 'HEAD'],
    url: catalogueHistoryPath,
    handler: async (request, reply) => {
      const { product } = request.query as { product?: unknown };
      const history = typeof product === 'string' ? await deps.publisher.productHistory(product) : undefined;
      if (!history) return reply.callNotFound();
      reply.header('access-control-allow-origin', '*');
      return sendRendered(request, reply, renderJson({ product, history }));
    },
  });

  let downloads: { doc: RenderedDocument; at: number; version: number } | undefined;
  app.route({
    method: ['GET', 'HEAD'],
    url: catalogueDownloadsPath,
    handler: async (request, reply) => {
      // Rendered again when counts may have moved, and at once when an image was made private or deleted.
      const { version, audience } = deps.publisher.catalogueAudience();
      if (!downloads || downloads.version !== version || Date.now() - downloads.at > flushIntervalMs) {
        downloads = { doc: renderJson(await catalogueDownloads(deps.usage, audience)), at: Date.now(), version };
      }
      reply.header('access-control-allow-origin', '*');
      return sendRendered(request, reply, downloads.doc);
    },
  });

  app.route({
    method: ['GET', 'HEAD'],
    url: '/catalogue/assets/:name',
    handler: async (request, reply) => {
      const asset = deps.assets.files.get(request.url.split('?')[0]!);
      if (!asset) return reply.callNotFound();
      // The name carries the hash of the bytes: a new version is a new URL.
      return sendRendered(request, reply, asset, 'public, max-age=31536000, immutable');
    },
  });
}
