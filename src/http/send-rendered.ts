/** Sending a pre-rendered document (web/rendered.ts): ETag, 304, gzip when the client takes it, HEAD. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RenderedDocument } from '../web/rendered.ts';
import { noneMatch } from './conditional.ts';
import { sendPieces } from './send-blob.ts';

/**
 * Above this a body may not fit in the socket's send buffer at once (Linux starts it at 16 KiB
 * and grows it), so it can wait on a client that stopped reading.
 */
const mayWaitBytes = 64 * 1024;

export function sendRendered(request: FastifyRequest, reply: FastifyReply, doc: RenderedDocument, cacheControl = 'no-cache'): FastifyReply {
  reply.header('etag', doc.etag).header('content-type', doc.contentType).header('cache-control', cacheControl);
  reply.header('vary', reply.hasHeader('vary') ? `${String(reply.getHeader('vary'))}, accept-encoding` : 'accept-encoding');
  if (noneMatch(request.headers['if-none-match'], doc.etag)) return reply.code(304).send();
  const gzip = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
  const body = gzip ? doc.gzip : doc.body;
  if (gzip) reply.header('content-encoding', 'gzip');
  reply.header('content-length', String(body.length));
  if (request.method === 'HEAD') return reply.send();
  // Sent as files are, under send_timeout: a large index or catalogue page whose client stopped
  // reading would otherwise hold its connection forever.
  if (body.length > mayWaitBytes) return sendPieces(reply, [body]);
  return reply.send(body);
}
