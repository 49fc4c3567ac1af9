/**
 * Every request gets an id (sent back as `X-Request-Id`, and carried by the log lines about the
 * request), is counted for /metrics (route, status, bytes) and, once its response is over, gets
 * one access-log line at info level: method, path (secrets redacted), status, body bytes,
 * milliseconds, id and client address.
 *
 * It wraps the raw request handler rather than hooking into the framework, so the responses the
 * framework never finishes itself are counted too: blob bodies written straight to the socket,
 * responses cut mid-body, clients that went away. A failure after the headers were sent can no
 * longer become an error response; whoever sees it notes it here (`noteFailure`) and the line
 * of that request reports it, at error level: one line, once (written at once when the level
 * leaves access lines out).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { withoutSecrets } from '../remote/fetch.ts';
import type { Logger } from '../log.ts';
import type { RequestCounts } from '../metrics/server-metrics.ts';

export const requestIdHeader = 'x-request-id';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

// What this module keeps about a request lives on the request and response objects themselves:
// properties are several times cheaper per request than WeakMap entries.
const idKey = Symbol('wharf.requestId');
const failureKey = Symbol('wharf.failure');
const failureLogKey = Symbol('wharf.failureLog');
type TaggedRequest = IncomingMessage & { [idKey]?: string };
type TaggedResponse = ServerResponse & { [failureKey]?: { err: unknown }; [failureLogKey]?: Logger };

// A random prefix per process and a counter: unique across processes and restarts, and cheap
// (a random draw per request cost ~9% of a redirect's CPU time).
const idPrefix = randomBytes(4).toString('hex');
let idCounter = 0;
export const newRequestId = () => idPrefix + (idCounter++ >>> 0).toString(16).padStart(8, '0');

/** The id given to a request by `withAccessLog` (a new one for requests that did not pass it). */
export function requestIdOf(req: TaggedRequest): string {
  return (req[idKey] ??= newRequestId());
}

function byteLength(chunk: unknown, encoding: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  return chunk instanceof Uint8Array ? chunk.byteLength : 0;
}

/** Fields every line about a request carries. */
function requestFields(req: IncomingMessage, res: ServerResponse, id: string): Record<string, unknown> {
  return {
    method: req.method,
    path: withoutSecrets(req.url ?? ''),
    // 0: no response went out at all (the client left first).
    status: res.headersSent ? res.statusCode : 0,
    id,
    // A request detached from its socket (answered before its body was read, then closed) has none by now.
    client: (req.socket as IncomingMessage['socket'] | null)?.remoteAddress,
  };
}

/** A failure after the headers of `res` were sent: reported once, in the request's access-log line. */
export function noteFailure(res: TaggedResponse, err: unknown): void {
  if (res[failureKey]) return;
  res[failureKey] = { err };
  // No access line will be written (info is off): the failure is the request's one line.
  res[failureLogKey]?.error('request', { ...requestFields(res.req, res, requestIdOf(res.req)), err });
}

/**
 * Answers a request itself (returns true) or leaves it to the handler. It sends `id` as the
 * X-Request-Id in its one `writeHead`, as the framework does (app.ts): a header set on the
 * response beforehand would send every header of that call through Node's slower one-by-one
 * path (measured: 31 -> 25 µs of CPU a redirect).
 */
export type Shortcut = (req: IncomingMessage, res: ServerResponse, id: string) => boolean;

/** The shortcuts given, tried in order: the first that answers ends it. */
export function firstOf(...shortcuts: (Shortcut | undefined)[]): Shortcut {
  const given = shortcuts.filter((s): s is Shortcut => s !== undefined);
  return (req, res, id) => given.some((shortcut) => shortcut(req, res, id));
}

export function withAccessLog(handler: Handler, log: Logger, counts?: RequestCounts, shortcut?: Shortcut): Handler {
  return (req, res) => {
    const id = requestIdOf(req);
    // Counting body bytes and timing cost as much as a redirect decision: only for a line that is written.
    if (log.enabled('info')) logWhenClosed(req, res, id, log, counts);
    else {
      (res as TaggedResponse)[failureLogKey] = log;
      if (counts) countWhenClosed(req, res, counts);
    }
    if (shortcut?.(req, res, id)) return;
    handler(req, res);
  };
}

/** Counts the response for /metrics once it is over: its route, status and bytes on the wire. */
function countWhenClosed(req: IncomingMessage, res: ServerResponse, counts: RequestCounts): void {
  // The socket as it is now: by 'close' the request may be detached from it (req.socket null).
  const socket = req.socket;
  const before = socket.bytesWritten;
  res.once('close', () => counts.observe(req.url ?? '', res.headersSent ? res.statusCode : 0, socket.bytesWritten - before));
}

function logWhenClosed(req: IncomingMessage, res: TaggedResponse, id: string, log: Logger, counts: RequestCounts | undefined): void {
  if (counts) countWhenClosed(req, res, counts);
  const started = performance.now();
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
    const fields = requestFields(req, res, id);
    fields.bytes = req.method === 'HEAD' || res.statusCode === 304 ? 0 : bytes;
    fields.ms = Math.round(performance.now() - started);
    if (!res.writableFinished) fields.incomplete = true;
    const failure = res[failureKey];
    if (failure) log.error('request', { ...fields, err: failure.err });
    else log.info('request', fields);
  });
}
