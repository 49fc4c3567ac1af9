/**
 * Serving an immutable file: Content-Length, ETag (its sha256), a single Range (206/416),
 * conditional requests, HEAD. The file is opened before the headers are decided, and a failure
 * after they were sent cuts the connection so the client sees a short body, never wrong bytes.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BlobStore, ByteRange, OpenedBlob } from '../blob/store.ts';
import type { BlobRef } from '../domain/image.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import { noteFailure } from './access-log.ts';
import { noneMatch } from './conditional.ts';
import { outlet } from '../transfer/write-out.ts';

export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined; // multiple or malformed ranges: send it all
  if (m[1] === '') {
    const suffix = Number(m[2]);
    // An empty file has no last byte to give (RFC 9110 14.1.2).
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

/**
 * Whether an answer carrying `range` of a file completes a download of it: it reaches the last
 * byte (a resumed download ends there too), and is not a read of the tail alone (`bytes=-N`).
 */
export function completesDownload(rangeHeader: string | undefined, range: ByteRange, size: number): boolean {
  return range.end === size - 1 && (range.start === 0 || !rangeHeader?.trim().startsWith('bytes=-'));
}

/** `onDownloaded` runs once a body that completes a download (above) was handed to the socket. */
export async function sendBlob(
  request: FastifyRequest,
  reply: FastifyReply,
  blobs: BlobStore,
  blob: BlobRef,
  options: { headers?: Record<string, string>; onDownloaded?: (() => void) | undefined } = {},
): Promise<FastifyReply> {
  const answer = fileHeaders(request, reply, blob, options.headers);
  if ('sent' in answer) return answer.sent;
  const { onDownloaded } = options;
  const counts = onDownloaded && completesDownload(request.headers.range, answer.range, blob.size);
  return sendPieces(reply, [await blobs.openCopy(blob.sha256, answer.range)], counts ? (whole) => whole && onDownloaded() : undefined);
}

/**
 * The headers of an immutable file's answer (any source): the answer is complete (`sent`: 304,
 * HEAD) or its body is `range` of the file, the whole file when no Range was asked.
 */
export function fileHeaders(
  request: FastifyRequest,
  reply: FastifyReply,
  blob: { sha256: string; size: number },
  headers: Record<string, string> = {},
): { sent: FastifyReply } | { range: ByteRange } {
  const etag = `"${blob.sha256}"`;
  // A caller's type and caching win (a registry manifest read by tag is not immutable).
  reply.headers({
    'cache-control': 'public, max-age=31536000, immutable',
    'content-type': 'application/octet-stream',
    ...headers,
    etag,
    'accept-ranges': 'bytes',
  });
  if (noneMatch(request.headers['if-none-match'], etag)) return { sent: reply.code(304).send() };

  let range = parseRange(request.headers.range, blob.size);
  if (range && request.headers['if-range'] && request.headers['if-range'] !== etag) range = undefined;
  if (range === 'unsatisfiable') {
    // The one header an error keeps: it tells the client how long the file is.
    reply.header('content-range', `bytes */${blob.size}`);
    throw new AppError(ErrorCodes.rangeNotSatisfiable, `The range is outside the ${blob.size} bytes of the file`);
  }
  const length = range ? range.end - range.start + 1 : blob.size;
  reply.header('content-length', String(length));
  if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${blob.size}`);
  if (request.method === 'HEAD') return { sent: reply.send() };
  return { range: range ?? recorded(blob) };
}

/**
 * The whole file as its record says: a stored file shorter than its record then fails the copy
 * (and cuts the connection) instead of ending the body early under a longer Content-Length,
 * which would leave the client waiting.
 */
export const recorded = (blob: { size: number }): ByteRange => ({ start: 0, end: blob.size - 1 });

export type Piece = Buffer | OpenedBlob;

/**
 * Sends a body made of literal bytes and blob copies (opened beforehand, so a missing file was
 * an error response). The blobs go straight to the socket from reused buffers (blob/fs.ts), past
 * the framework's stream handling; a failure mid-body cuts the connection: never wrong bytes.
 * `onSent` learns whether the whole body was handed to the socket.
 */
export function sendPieces(reply: FastifyReply, pieces: Piece[], onSent?: (whole: boolean) => void): FastifyReply {
  reply.hijack();
  const out = reply.raw;
  out.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string>);
  // A client that takes no byte for this long is cut (Node destroys a socket whose 'timeout'
  // nobody handles); the next request on the connection runs without it.
  out.setTimeout(reply.server.sendTimeoutMs);
  let next = 0;
  const to = outlet(out);
  (async () => {
    for (; next < pieces.length; next++) {
      const piece = pieces[next]!;
      if (Buffer.isBuffer(piece)) await to.write(piece);
      else await piece.copyTo(out);
    }
    // Every byte reached the socket: the client may have them all and hang up before 'finish'.
    onSent?.(true);
    out.setTimeout(0);
    out.end();
  })().catch(async (err: unknown) => {
    onSent?.(false);
    // A client that went away is no failure of ours; anything else is, and the access log says so.
    if (!out.destroyed) noteFailure(out, err);
    out.destroy();
    // Blobs not copied yet still hold an open file.
    for (const piece of pieces.slice(next + 1)) if (!Buffer.isBuffer(piece)) await piece.close();
  }).finally(() => to.release());
  return reply;
}
