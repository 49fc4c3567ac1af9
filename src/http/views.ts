/**
 * Private views over simplestreams (domain/view.ts): `/views/VIEW/TOKEN/streams/v1/DOC`, the
 * index of one token's view, and `/views/VIEW/files/CAPABILITY/SHA.EXT`, one file it lists. A
 * wrong, expired or revoked token, a capability of another file or view, and a path that does not
 * exist all get the same answer: the framework's own 404. Nothing here puts the path in an answer
 * (no redirect), and the logger takes the token's secret out of every line (domain/redact.ts).
 */
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IndexPublisher } from '../core/publish.ts';
import type { BlobStore } from '../blob/store.ts';
import type { DownloadCounter } from '../core/usage.ts';
import { artifactSha } from '../core/publish.ts';
import { viewForUserAgent } from '../domain/simplestreams.ts';
import { viewsSegment } from '../domain/view.ts';
import { sendBlob } from './send-blob.ts';
import { mayWaitBytes, renderedAnswer, sendRendered } from './send-rendered.ts';
import { requestIdHeader, type Shortcut } from './access-log.ts';

export interface ViewDeps {
  publisher: IndexPublisher;
  blobs: BlobStore;
  downloads: DownloadCounter | undefined;
}

/** No shared cache may keep a private index; the body depends on the client (ClientView). */
const indexOptions = { cacheControl: 'private, no-cache', vary: 'user-agent' };

const indexUrl = new RegExp(`^/${viewsSegment}/([^/?]+)/([^/?]+)/(streams/v1/[^/?]+)(?:\\?.*)?$`);

/**
 * A view's index documents answered before the framework, as the root's are (simplestreams.ts
 * `indexShortcut`) once this token's documents are rendered; anything else goes on to the routes.
 */
export function viewIndexShortcut(publisher: IndexPublisher): Shortcut {
  return (req, res, id) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !req.url?.startsWith(`/${viewsSegment}/`) || !(req.socket as TLSSocket).encrypted) return false;
    const m = indexUrl.exec(req.url);
    const token = m && publisher.viewOpener(m[1]!, m[2]!);
    const doc = token && publisher.renderedViewDocument(token, m[3]!, viewForUserAgent(req.headers['user-agent']));
    if (!doc) return false;
    const answer = renderedAnswer(doc, req, indexOptions);
    if (answer.body && answer.body.length > mayWaitBytes) return false;
    res.writeHead(answer.status, { ...answer.headers, [requestIdHeader]: id });
    res.end(answer.body);
    return true;
  };
}

export function viewRoutes(app: FastifyInstance, deps: ViewDeps) {
  const { publisher } = deps;
  app.route({
    method: ['GET', 'HEAD'],
    url: `/${viewsSegment}/:view/:token/streams/v1/:document`,
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      const { view, token, document } = request.params as { view: string; token: string; document: string };
      // The index carries the token's capabilities: never over plain HTTP (app.ts sends no redirect either).
      const opener = (request.raw.socket as TLSSocket).encrypted ? publisher.viewOpener(view, token) : undefined;
      const doc = opener && (await publisher.viewDocument(opener, `streams/v1/${document}`, viewForUserAgent(request.headers['user-agent'])));
      if (!doc) return reply.callNotFound();
      reply.header('vary', indexOptions.vary);
      return sendRendered(request, reply, doc, indexOptions.cacheControl);
    },
  });

  app.route({
    method: ['GET', 'HEAD'],
    url: `/${viewsSegment}/:view/files/:capability/:name`,
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      const { view, capability, name } = request.params as { view: string; capability: string; name: string };
      const sha = artifactSha(`files/${name}`);
      const blob = sha && (await publisher.viewArtifact(view, capability, sha));
      if (!blob) return reply.callNotFound();
      const { downloads } = deps;
      const counted = downloads && publisher.countedAs(blob.sha256);
      return sendBlob(request, reply, deps.blobs, blob, { onDownloaded: counted && (() => downloads.count(counted, 'file')) });
    },
  });
}
