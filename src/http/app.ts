/**
 * The HTTP application: one Fastify instance behind every listener. Plain-HTTP requests get
 * artifacts only (clients try http:// first and check every byte against the HTTPS index);
 * anything else is redirected to HTTPS.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { IndexPublisher } from '../core/publish.ts';
import type { Store } from '../core/context.ts';
import type { Logger } from '../log.ts';
import { simplestreamsRoutes } from './simplestreams.ts';
import { directRoutes } from './direct.ts';
import { isLxdPath, lxdErrorFor, lxdRoutes } from './lxd/routes.ts';
import { lxdError } from './lxd/envelope.ts';
import { httpStatus } from './errors.ts';
import { httpsBase } from './base-url.ts';
import { withoutSecrets } from '../remote/fetch.ts';
import type { ImageSecrets } from '../core/secrets.ts';
import type { GrantStore } from '../meta/grants.ts';
import type { TlsIdentity } from '../tls.ts';

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
}

const plainHttpAllowed = (url: string) => url.startsWith('/files/');

export async function buildApp(deps: AppDeps): Promise<{ app: FastifyInstance; handler: RequestHandler }> {
  let handler: RequestHandler | undefined;
  const app = Fastify({
    logger: false,
    // Downloads of large files may take long: no timeout beyond the socket's own.
    requestTimeout: 0,
    // Fastify's own server is never listened on: listen.ts feeds it (and a TLS twin) connections.
    serverFactory: (h) => {
      handler = h as RequestHandler;
      return createServer(handler);
    },
    // Requests Fastify refuses before routing (a malformed URL or Content-Type) still get the
    // error shape of the API they asked, not the framework's own.
    frameworkErrors: (err, request, reply) => {
      const status = httpStatus(err);
      if (isLxdPath(request.url)) return lxdError(reply as FastifyReply, status, err.message);
      return (reply as FastifyReply).code(status).send({ error: err.message });
    },
    // A body is what the client sent: 5 is not "5", and fields are not invented or dropped.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false } },
  });

  app.addHook('onRequest', async (request, reply) => {
    const encrypted = (request.raw.socket as TLSSocket).encrypted === true;
    if (!encrypted && !plainHttpAllowed(request.url)) {
      return reply.redirect(`${httpsBase(request.raw, deps.httpsPort())}${request.url}`, 301);
    }
    return undefined;
  });

  app.addHook('onResponse', async (request, reply) => {
    deps.log.debug('request', { method: request.method, url: withoutSecrets(request.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) });
  });

  app.setErrorHandler(async (err, request, reply) => {
    const status = httpStatus(err);
    if (status >= 500) deps.log.error('request failed', { url: withoutSecrets(request.url), err });
    if (reply.sent || reply.raw.headersSent) return reply.raw.destroy();
    if (isLxdPath(request.url)) return lxdErrorFor(reply, status, err);
    return reply.code(status).send({ error: (err as Error).message });
  });

  app.setNotFoundHandler(async (request, reply) =>
    isLxdPath(request.url) ? lxdError(reply, 404, 'not found') : reply.code(404).send({ error: 'not found' }),
  );

  simplestreamsRoutes(app, { publisher: deps.publisher, blobs: deps.store.blobs });
  directRoutes(app, { store: deps.store });
  lxdRoutes(app, { store: deps.store, secrets: deps.secrets, grants: deps.grants, tls: deps.tls, version: deps.version, maxUploadSize: deps.maxUploadSize, publisher: deps.publisher });

  await app.ready();
  return { app, handler: handler! };
}
