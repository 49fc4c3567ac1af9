/**
 * The one error renderer of the HTTP front end. Routes throw AppError; the status comes from the
 * catalogue (`src/errors.ts`), and the body is LXD's error envelope under `/` and `/1.0`, else
 * `{"error": message}`. A 5xx that is not an AppError says "Internal server error", never its own
 * message (which may name files or queries).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorEntry, isAppError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { withoutSecrets } from '../remote/fetch.ts';
import { noteFailure, requestIdHeader } from './access-log.ts';
import { lxdError } from './lxd/envelope.ts';
import { OciError } from '../domain/oci.ts';
import { challenge } from './oci/auth.ts';

export function httpStatus(err: unknown): number {
  return errorEntry(err).status;
}

export function isLxdPath(url: string): boolean {
  return url === '/' || url.startsWith('/?') || url.startsWith('/1.0');
}

export const isRegistryPath = (url: string) => url === '/v2' || url.startsWith('/v2/') || url.startsWith('/v2?');

/** The spec's code of an error: an OciError's own, else the nearest by status. */
function registryErrorCode(err: unknown, status: number): string {
  if (err instanceof OciError) return err.ociCode;
  return ({ 401: 'UNAUTHORIZED', 403: 'DENIED', 404: 'NAME_UNKNOWN', 413: 'SIZE_INVALID', 416: 'RANGE_NOT_SATISFIABLE', 429: 'TOOMANYREQUESTS' } as Record<number, string>)[status] ?? (status < 500 ? 'UNSUPPORTED' : 'UNKNOWN');
}

/**
 * Headers a route set for the answer it meant to give (ETag, Cache-Control, Content-Disposition,
 * LXD-Image-URL...) describe a success: an error keeps only the request id, and a 416 the
 * Content-Range that says how long the file is.
 */
function keptOnError(name: string, status: number) {
  return name === requestIdHeader || (status === 416 && name === 'content-range');
}

export function sendError(request: FastifyRequest, reply: FastifyReply, err: unknown, log: Logger): FastifyReply | undefined {
  const status = httpStatus(err);
  if (reply.sent || reply.raw.headersSent) {
    // Too late for an error response: the client sees a short body, and the access log the failure.
    noteFailure(reply.raw, err);
    reply.raw.destroy();
    return undefined;
  }
  if (status >= 500) {
    const fields = { id: request.id, path: withoutSecrets(request.url) };
    if (isAppError(err) && err.code !== 'internal') log.warn('request failed', { ...fields, code: err.code, message: err.message });
    else log.error('request failed', { ...fields, err });
  }
  for (const name of Object.keys(reply.getHeaders())) if (!keptOnError(name, status)) reply.removeHeader(name);
  // A request the framework refused before its hooks ran has no id header yet.
  reply.header(requestIdHeader, request.id);
  // Only `busy` is a 503: wharf is up, this one thing is not possible this moment.
  if (status === 503) reply.header('retry-after', '5');
  // Whatever an upstream's error said, an anonymous client never sees the credentials wharf used.
  const message = isAppError(err) || status < 500 ? withoutSecrets((err as Error).message) : 'Internal server error';
  if (isLxdPath(request.url)) return lxdError(reply, status, message);
  if (isRegistryPath(request.url)) {
    // The spec's envelope; a 401 says where to get a token (clients read no other challenge).
    if (status === 401) reply.header('www-authenticate', challenge(request, err instanceof OciError ? err.scope : undefined));
    return reply.code(status).header('content-type', 'application/json; charset=utf-8').send({ errors: [{ code: registryErrorCode(err, status), message, detail: null }] });
  }
  return reply.code(status).header('content-type', 'application/json; charset=utf-8').send({ error: message });
}
