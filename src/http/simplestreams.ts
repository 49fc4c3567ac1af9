/** The simplestreams view: pre-rendered index documents and the artifact files they list. */
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IndexPublisher } from '../core/publish.ts';
import { artifactSha } from '../core/publish.ts';
import type { BlobStore } from '../blob/store.ts';
import { sendBlob } from './send-blob.ts';
import { mayWaitBytes, renderedAnswer, sendRendered } from './send-rendered.ts';
import { requestIdHeader, type Shortcut } from './access-log.ts';
import { viewForUserAgent } from '../domain/simplestreams.ts';
import type { DownloadCounter } from '../core/usage.ts';
import type { BlobRedirects } from '../core/blob-redirects.ts';
import { noneMatch } from './conditional.ts';
import { countRedirect } from './steer.ts';
import { isChannelName } from '../domain/channel.ts';

export interface SimplestreamsDeps {
  publisher: IndexPublisher;
  blobs: BlobStore;
  downloads: DownloadCounter | undefined;
  /** `blob_redirect`: artifact downloads sent to the blob store's own URLs. */
  redirects?: BlobRedirects | undefined;
}

/** The body depends on the client (see ClientView) as well as on the encoding. */
const indexVary = 'user-agent';
/** The LXD and Incus web UIs read the index of a custom image server from the browser. */
const indexHeaders = { 'access-control-allow-origin': '*' };

/**
 * The index documents answered before the framework, as LXD and Incus ask for them thousands of
 * times a second: a lookup in memory and one `writeHead`, where Fastify's routing, hooks and
 * reply would cost a quarter of the answer (bench/images-json-floor.ts). Anything else (plain
 * HTTP, which is sent to HTTPS; an unknown document; a body that may wait on a slow reader) goes
 * on to the routes below, which answer it the same way.
 */
export function indexShortcut(publisher: IndexPublisher): Shortcut {
  return (req, res, id) => {
    // The default channel's root (/streams/v1/...) or another's (/NAME/streams/v1/...).
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !req.url?.includes('/streams/v1/') || !(req.socket as TLSSocket).encrypted) return false;
    const doc = publisher.document(req.url.split('?')[0]!.slice(1), viewForUserAgent(req.headers['user-agent']));
    if (!doc) return false;
    const answer = renderedAnswer(doc, req, { vary: indexVary, headers: indexHeaders });
    if (answer.body && answer.body.length > mayWaitBytes) return false;
    res.writeHead(answer.status, { ...answer.headers, [requestIdHeader]: id });
    res.end(answer.body);
    return true;
  };
}

export function simplestreamsRoutes(app: FastifyInstance, deps: SimplestreamsDeps) {
  const sendDocument = (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0]!.replace(/^\/+/, '');
    const doc = deps.publisher.document(path, viewForUserAgent(request.headers['user-agent']));
    if (!doc) return reply.callNotFound();
    reply.header('vary', indexVary).headers(indexHeaders);
    return sendRendered(request, reply, doc);
  };
  app.route({ method: ['GET', 'HEAD'], url: '/streams/v1/:document', handler: sendDocument });
  app.route({ method: ['GET', 'HEAD'], url: '/:channel/streams/v1/:document', handler: sendDocument });

  // A file under a channel's root is the same file: clients resolve item paths against the
  // remote's URL, so a channel remote (https://host/daily) asks for /daily/files/... Also once
  // the channel has no root any more (its last image demoted): a client holding its index still
  // fetches what it listed, through the grace period.
  const sendFile = async (request: FastifyRequest, reply: FastifyReply) => {
    const { channel, name } = request.params as { channel?: string; name: string };
    if (channel !== undefined && !isChannelName(channel)) return reply.callNotFound();
    const path = `files/${name}`;
    const sha = artifactSha(path);
    const blob = sha && (await deps.publisher.artifact(sha));
    if (!blob) return reply.callNotFound();
    // Downloads that GeoIP steering sends elsewhere never get here (steer.ts answers them first).
    const { downloads, redirects } = deps;
    // HEAD and a revalidation are answered here: a presigned URL opens a GET only.
    if (redirects && request.method === 'GET' && !noneMatch(request.headers['if-none-match'], `"${blob.sha256}"`)) {
      const location = await redirects.url(blob.sha256);
      if (location) {
        if (downloads) countRedirect(request.raw, blob, deps.publisher, downloads);
        return reply.code(302).headers({ location, 'cache-control': 'no-store' }).send();
      }
    }
    const counted = downloads && deps.publisher.countedAs(blob.sha256);
    return sendBlob(request, reply, deps.blobs, blob, { onDownloaded: counted && (() => downloads.count(counted, 'file')) });
  };
  app.route({ method: ['GET', 'HEAD'], url: '/files/:name', handler: sendFile });
  app.route({ method: ['GET', 'HEAD'], url: '/:channel/files/:name', handler: sendFile });
}
