/** Sending a pre-rendered document (web/rendered.ts): ETag, 304, gzip when the client takes it, HEAD. */
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RenderedDocument } from '../web/rendered.ts';
import { noneMatch } from './conditional.ts';
import { sendPieces } from './send-blob.ts';

/**
 * Above this a body may not fit in the socket's send buffer at once (Linux starts it at 16 KiB
 * and grows it), so it can wait on a client that stopped reading.
 */
export const mayWaitBytes = 64 * 1024;

export interface RenderedAnswer {
  status: 200 | 304;
  headers: Record<string, string>;
  /** What follows the headers: nothing for a 304 or a HEAD. */
  body: Buffer | undefined;
}

/**
 * The answer to a request for `doc`, decided before a byte is sent: by its ETag, the encodings
 * the client takes and its method. `vary` names what else chose the document (user-agent).
 */
export function renderedAnswer(doc: RenderedDocument, request: { method?: string | undefined; headers: IncomingHttpHeaders }, options: { cacheControl?: string; vary?: string; headers?: Record<string, string> } = {}): RenderedAnswer {
  const headers: Record<string, string> = {
    ...options.headers,
    etag: doc.etag,
    'content-type': doc.contentType,
    'cache-control': options.cacheControl ?? 'no-cache',
    vary: options.vary ? `${options.vary}, accept-encoding` : 'accept-encoding',
  };
  if (noneMatch(request.headers['if-none-match'], doc.etag)) return { status: 304, headers, body: undefined };
  const gzip = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
  const body = gzip ? doc.gzip : doc.body;
  if (gzip) headers['content-encoding'] = 'gzip';
  headers['content-length'] = String(body.length);
  return { status: 200, headers, body: request.method === 'HEAD' ? undefined : body };
}

export function sendRendered(request: FastifyRequest, reply: FastifyReply, doc: RenderedDocument, cacheControl = 'no-cache'): FastifyReply {
  const vary = reply.getHeader('vary');
  const answer = renderedAnswer(doc, request, { cacheControl, ...(vary !== undefined ? { vary: String(vary) } : {}) });
  reply.code(answer.status).headers(answer.headers);
  if (!answer.body) return reply.send();
  // Sent as files are, under send_timeout: a large index or catalogue page whose client stopped
  // reading would otherwise hold its connection forever.
  if (answer.body.length > mayWaitBytes) return sendPieces(reply, [answer.body]);
  return reply.send(answer.body);
}
