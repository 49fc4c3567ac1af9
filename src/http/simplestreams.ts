/** The simplestreams view: pre-rendered index documents and the artifact files they list. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IndexPublisher } from '../core/publish.ts';
import { artifactSha } from '../core/publish.ts';
import type { BlobStore } from '../blob/store.ts';
import { sendBlob } from './send-blob.ts';
import { sendRendered } from './send-rendered.ts';
import { viewForUserAgent } from '../domain/simplestreams.ts';
import type { DownloadCounter } from '../core/usage.ts';
import type { BlobRedirects } from '../core/blob-redirects.ts';
import { noneMatch } from './conditional.ts';
import { countRedirect } from './steer.ts';

export interface SimplestreamsDeps {
  publisher: IndexPublisher;
  blobs: BlobStore;
  downloads: DownloadCounter | undefined;
  /** `blob_redirect`: artifact downloads sent to the blob store's own URLs. */
  redirects?: BlobRedirects | undefined;
}

export function simplestreamsRoutes(app: FastifyInstance, deps: SimplestreamsDeps) {
  const sendDocument = (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0]!.replace(/^\/+/, '');
    const doc = deps.publisher.document(path, viewForUserAgent(request.headers['user-agent']));
    if (!doc) return reply.callNotFound();
    // The body depends on the client (see ClientView) as well as on the encoding.
    reply.header('vary', 'user-agent');
    // The LXD and Incus web UIs read the index of a custom image server from the browser.
    reply.header('access-control-allow-origin', '*');
    return sendRendered(request, reply, doc);
  };
  app.route({ method: ['GET', 'HEAD'], url: '/streams/v1/:document', handler: sendDocument });

  app.route({
    method: ['GET', 'HEAD'],
    url: '/files/:name',
    handler: async (request, reply) => {
      const path = `files/${(request.params as { name: string }).name}`;
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
    },
  });
}
