/**
 * The HTTP application: one Fastify instance behind every listener. Plain-HTTP requests get
 * artifacts only (clients try http:// first and check every byte against the HTTPS index);
 * anything else is redirected to HTTPS.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from '../builtins/http.ts';
import type { TLSSocket } from 'node:tls';
import type { IndexPublisher } from '../core/publish.ts';
import type { Store } from '../core/context.ts';
import type { Logger } from '../log.ts';
import { indexShortcut, simplestreamsRoutes } from './simplestreams.ts';
import { viewIndexShortcut, viewRoutes } from './views.ts';
import { directRoutes } from './direct.ts';
import { lxdRoutes } from './lxd/routes.ts';
import { ociRoutes } from './oci/routes.ts';
import { tokenKey } from '../domain/registry-token.ts';
import type { OciCache } from '../mirror/oci-cache.ts';
import type { RegistryCounts } from '../metrics/server-metrics.ts';
import { sendError } from './errors.ts';
import { httpsBase, toOriginForm } from './base-url.ts';
import { firstOf, requestIdHeader, requestIdOf, withAccessLog, type Shortcut } from './access-log.ts';
import { notFound } from '../errors.ts';
import type { ImageSecrets } from '../core/secrets.ts';
import type { GrantStore } from '../meta/grants.ts';
import type { TlsIdentity } from '../tls.ts';
import type { Steering } from '../steering/steer.ts';
import { steeringShortcut } from './steer.ts';
import { operationsRoutes, type OperationsDeps } from './operations.ts';
import { viewerOf } from './lxd/caller.ts';
import type { RequestCounts } from '../metrics/server-metrics.ts';
import type { DownloadCounter } from '../core/usage.ts';
import type { BlobRedirects } from '../core/blob-redirects.ts';
import { catalogueRoutes, sendCataloguePage, type CatalogueDeps } from './catalogue.ts';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface AppDeps {
  store: Store;
  publisher: IndexPublisher;
  log: Logger;
  /** Port of the HTTPS listener, for redirects from plain HTTP. */
  httpsPort: () => number;
  secrets: ImageSecrets;
  grants: GrantStore;
  tls: TlsIdentity;
  version: string;
  maxUploadSize: number;
  /** `send_timeout` in ms: a body copy whose client takes no byte for this long is cut. */
  sendTimeoutMs: number;
  /** GeoIP steering of artifact downloads, when the server has sites and a GeoIP database. */
  steering?: Steering | undefined;
  /** Where requests are counted for /metrics. */
  counts: RequestCounts;
  /** Where image downloads are counted (usage statistics); none when counting is off. */
  downloads: DownloadCounter | undefined;
  /** `blob_redirect`: artifact downloads sent to the blob store's own short-lived URLs. */
  redirects?: BlobRedirects | undefined;
  /** The web catalogue's usage counts and assets (the page itself comes from the publisher). */
  catalogue?: Omit<CatalogueDeps, 'publisher' | 'store' | 'registryPrivate'> | undefined;
  operations: Omit<OperationsDeps, 'trustedClient'>;
  /** The OCI registry's pull-through cache, and where its pulls and pushes are counted. */
  registry: { cache: OciCache; counts: RegistryCounts; privateGlobs: string[] };
}

declare module 'fastify' {
  interface FastifyInstance {
    /** `send_timeout`: how long a body copy may wait for the client to take a byte (send-blob.ts, edge.ts). */
    sendTimeoutMs: number;
  }
}

// Probes and scrapers often speak plain HTTP to a local port: those answer there too.
// A private view's file (its URL opens that file only) too: clients try plain HTTP first.
const plainHttpAllowed = (url: string) =>
  url.startsWith('/files/') || /^\/[a-z][a-z0-9-]*\/files\//.test(url) || /^\/views\/[^/]+\/files\//.test(url) || url === '/healthz' || url === '/readyz' || url === '/metrics';

export async function buildApp(deps: AppDeps): Promise<{ app: FastifyInstance; handler: RequestHandler }> {
  const { app, handler } = baseApp(deps.log, {
    counts: deps.counts,
    shortcut: firstOf(indexShortcut(deps.publisher), viewIndexShortcut(deps.publisher), deps.steering && steeringShortcut(deps.publisher, deps.steering, deps.downloads)),
    sendTimeoutMs: deps.sendTimeoutMs,
  });
  app.addHook('onRequest', async (request, reply) => {
    const encrypted = (request.raw.socket as TLSSocket).encrypted === true;
    if (!encrypted && !plainHttpAllowed(request.url)) {
      // Only a path has an HTTPS twin (`OPTIONS *` has none): anything else is not found here.
      // A view's index path carries its token: no Location may (and a token is no use over plain HTTP).
      if (!request.url.startsWith('/') || request.url.startsWith('/views/')) throw notFound('not found');
      return reply.redirect(`${httpsBase(request.raw, deps.httpsPort())}${request.url}`, 301);
    }
    return undefined;
  });

  simplestreamsRoutes(app, { publisher: deps.publisher, blobs: deps.store.blobs, downloads: deps.downloads, redirects: deps.redirects });
  viewRoutes(app, { publisher: deps.publisher, blobs: deps.store.blobs, downloads: deps.downloads });
  directRoutes(app, { store: deps.store, downloads: deps.downloads });
  if (deps.catalogue) catalogueRoutes(app, { ...deps.catalogue, publisher: deps.publisher, store: deps.store, registryPrivate: deps.registry.privateGlobs });
  operationsRoutes(app, { ...deps.operations, trustedClient: async (request) => {
      // /metrics names every product: not for a certificate restricted to channels.
      const viewer = await viewerOf(deps.store, request);
      return viewer.trusted && !viewer.channels;
    } });
  const { privateGlobs, ...registry } = deps.registry;
  ociRoutes(app, { store: deps.store, auth: { store: deps.store, key: tokenKey(deps.tls.key), privateGlobs }, ...registry });
  lxdRoutes(app, {
    store: deps.store,
    secrets: deps.secrets,
    grants: deps.grants,
    tls: deps.tls,
    version: deps.version,
    maxUploadSize: deps.maxUploadSize,
    publisher: deps.publisher,
    downloads: deps.downloads,
    page: deps.catalogue && ((request, reply) => sendCataloguePage(request, reply, deps.publisher)),
  });

  await app.ready();
  return { app, handler: handler() };
}

/**
 * A Fastify instance as every wharf front end uses it: never listening itself (listen.ts feeds
 * it connections), the access log around it, errors rendered by errors.ts. The caller adds its
 * routes, then `ready()`; `handler` is valid from then on. A `shortcut` sees each request first
 * (inside the access log) and may answer it without the framework.
 */
export function baseApp(
  log: Logger,
  options: { counts?: RequestCounts; shortcut?: Shortcut | undefined; sendTimeoutMs?: number } = {},
): { app: FastifyInstance; handler: () => RequestHandler } {
  const { counts, shortcut } = options;
  let handler: RequestHandler | undefined;
  const app = Fastify({
    logger: false,
    // Downloads of large files may take long: no timeout beyond the socket's own.
    requestTimeout: 0,
    // Fastify's own server is never listened on: listen.ts feeds it (and a TLS twin) connections.
    serverFactory: (h) => {
      const routes = h as RequestHandler;
      const logged = withAccessLog(routes, log, counts, shortcut);
      handler = (req, res) => {
        toOriginForm(req);
        logged(req, res);
      };
      return createServer(handler);
    },
    // The id the access log gave the request (X-Request-Id).
    genReqId: (raw) => requestIdOf(raw),
    // Requests Fastify refuses before routing (a malformed URL or Content-Type) still get the
    // error shape of the API they asked, not the framework's own.
    frameworkErrors: (err, request, reply) => void sendError(request as FastifyRequest, reply as FastifyReply, err, log),
    // A body is what the client sent: 5 is not "5", and fields are not invented or dropped.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false } },
  });

  // Every answer names its request (X-Request-Id), set among the reply's headers: Fastify sends
  // them in one writeHead, Node's fast path (see Shortcut in access-log.ts).
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(requestIdHeader, request.id);
    done();
  });

  app.decorate('sendTimeoutMs', options.sendTimeoutMs ?? 60_000);

  // The one place errors become responses: routes throw, this renders (see errors.ts).
  app.setErrorHandler(async (err, request, reply) => sendError(request, reply, err, log));

  app.setNotFoundHandler(async () => {
    throw notFound('not found');
  });
  return { app, handler: () => handler! };
}
