/**
 * Every request gets an id (sent back as `X-Request-Id`, and carried by the log lines about the
 * request) and, once its response is over, one access-log line at info level: method, path
 * (secrets redacted), status, body bytes, milliseconds, id and client address.
 *
 * It wraps the raw request handler rather than hooking into the framework, so the responses the
 * framework never finishes itself are counted too: blob bodies written straight to the socket,
 * responses cut mid-body, clients that went away. A failure after the headers were sent can no
 * longer become an error response; whoever sees it notes it here (`noteFailure`) and the line
 * of that request reports it, at error level: one line, once.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { withoutSecrets } from '../remote/fetch.ts';
import type { Logger } from '../log.ts';

export const requestIdHeader = 'x-request-id';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const ids = new WeakMap<IncomingMessage, string>();
const failures = new WeakMap<ServerResponse, unknown>();

export const newRequestId = () => randomBytes(8).toString('hex');

/** The id given to a request by `withAccessLog` (a new one for requests that did not pass it). */
export function requestIdOf(req: IncomingMessage): string {
  let id = ids.get(req);
  if (id === undefined) ids.set(req, (id = newRequestId()));
  return id;
}

/** A failure after the headers of `res` were sent: reported once, in the request's access-log line. */
export function noteFailure(res: ServerResponse, err: unknown): void {
  if (!failures.has(res)) failures.set(res, err);
}

function byteLength(chunk: unknown, encoding: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  return chunk instanceof Uint8Array ? chunk.byteLength : 0;
}

export function withAccessLog(handler: Handler, log: Logger): Handler {
  return (req, res) => {
    const started = performance.now();
    const id = requestIdOf(req);
    res.setHeader(requestIdHeader, id);
    // Body bytes as they are handed to the connection, whoever writes them.
    let bytes = 0;
    const { write, end } = res;
    res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
      bytes += byteLength(chunk, rest[0]);
      return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as ServerResponse['write'];
    res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
      if (typeof chunk !== 'function') bytes += byteLength(chunk, rest[0]);
      return (end as (...args: unknown[]) => ServerResponse).call(this, chunk, ...rest);
    } as ServerResponse['end'];
    res.once('close', () => {
      const complete = res.writableFinished;
      const fields: Record<string, unknown> = {
        method: req.method,
        path: withoutSecrets(req.url ?? ''),
        // 0: no response went out at all (the client left first).
        status: res.headersSent ? res.statusCode : 0,
        bytes: req.method === 'HEAD' || res.statusCode === 304 ? 0 : bytes,
        ms: Math.round(performance.now() - started),
        id,
        client: req.socket.remoteAddress,
      };
      if (!complete) fields.incomplete = true;
      const failure = failures.get(res);
      if (failure !== undefined) log.error('request', { ...fields, err: failure });
      else log.info('request', fields);
    });
    handler(req, res);
  };
}
