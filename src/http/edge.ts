/**
 * The routes of a caching mirror: every artifact path of the origin, answered from the cache or
 * from the one fill that fetches it (headers at once, bytes as they arrive); index documents are
 * redirected to the origin, so clients always read the index the origin signs and serves, and so
 * is a visitor of the catalogue (the page at /).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BlobStore, ByteRange } from '../blob/store.ts';
import type { EdgeCache } from '../cache/edge-cache.ts';
import type { Fill } from '../cache/fill.ts';
import { AppError, isAppError, ErrorCodes, notFound } from '../errors.ts';
import { bareAddress } from '../addresses.ts';
import { emptySha256 } from '../domain/fingerprint.ts';
import { under } from '../remote/fetch.ts';
import { withoutUserInfo } from '../domain/redact.ts';
import { noteFailure } from './access-log.ts';
import { completesDownload, fileHeaders, sendPieces } from './send-blob.ts';
import { outlet } from '../transfer/write-out.ts';
import type { DownloadCounter } from '../core/usage.ts';

export interface EdgeDeps {
  cache: EdgeCache;
  blobs: BlobStore;
  origin: string;
  /** Counts complete downloads of the files that make an image (`wharf stats` on the mirror). */
  downloads?: DownloadCounter | undefined;
}

/** How long a miss waits for the origin's answer before sending its headers anyway. */
const originAnswerWaitMs = 5_000;

/** Bytes handed to a response at a time while following a fill. */
const pieceSize = 256 * 1024;
/**
 * After the first piece (sent as soon as there is a byte), a response following the fill waits
 * for this much: a write per upstream chunk to every reader cost more than the bytes themselves.
 */
const followPiece = 128 * 1024;

export function edgeRoutes(app: FastifyInstance, deps: EdgeDeps) {
  // Which files this mirror holds, verified: the origin prefers a site that has the file already.
  app.get('/.wharf/held', async () => ({ held: deps.cache.held() }));

  app.route({
    method: ['GET', 'HEAD'],
    url: '/*',
    handler: async (request, reply) => {
      const [rawPath, query] = splitUrl(request.url);
      let path: string;
      try {
        path = decodeURIComponent(rawPath).replace(/^\/+/, '');
      } catch {
        return reply.callNotFound();
      }
      // The index and the catalogue (its page at / and its documents) are the origin's to answer.
      if (path.startsWith('streams/') || path === '' || path.startsWith('catalogue/')) {
        // Never with the credentials this mirror reaches its origin with.
        return reply.redirect(`${withoutUserInfo(under(deps.origin, path)).href}${query}`, 302);
      }
      return serveCached(request, reply, deps, path);
    },
  });
}

function splitUrl(url: string): [string, string] {
  const at = url.indexOf('?');
  return at < 0 ? [url, ''] : [url.slice(0, at), url.slice(at)];
}

async function serveCached(request: FastifyRequest, reply: FastifyReply, deps: EdgeDeps, path: string, retried = false): Promise<FastifyReply> {
  const answer = await deps.cache.open(path);
  if (!answer) {
    const { index } = deps.cache;
    if (!index.known) throw new AppError(ErrorCodes.unavailable, `This mirror has not read its origin's index yet${index.lastFailure ? ` (${index.lastFailure})` : ': try again shortly'}`);
    throw notFound(`The origin lists no file ${path.slice(0, 200)}`);
  }
  const { file } = answer;
  // An empty file is all in its listing: nothing to fetch, and nothing but its sha256 to check.
  if (file.size === 0 && file.sha256 !== emptySha256) throw new AppError(ErrorCodes.upstreamCorrupt, `The origin lists ${path.slice(0, 200)} as empty, with the sha256 of something else`);
  reply.header('x-wharf-cache', answer.kind === 'hit' || file.size === 0 ? 'HIT' : 'MISS');
  // HEAD, 304 and 416 are answered from the listing: only a client taking bytes starts a fill.
  const headers = fileHeaders(request, reply, file);
  if ('sent' in headers) return headers.sent;
  // A body that brings the client the whole file counts once every byte was handed over.
  const counted = deps.downloads && file.counted && completesDownload(request.headers.range, headers.range, file.size) ? file.counted : undefined;
  if (file.size === 0) return sendPieces(reply, [], (whole) => whole && counted && deps.downloads!.count(counted, 'file'));
  let fill: Fill | undefined;
  if (answer.kind === 'miss') {
    fill = await deps.cache.fill(path, file, bareAddress(request.socket.remoteAddress));
    // An origin that is down or refuses the file is an error answer, not a cut-off body; one that
    // is slow to answer still gets our headers in time (clients wait 30 s for them).
    await Promise.race([fill.answered, sleep(originAnswerWaitMs, undefined, { ref: false })]);
  }
  const reading = deps.cache.reading(file.sha256);
  const done = (whole: boolean) => {
    reading();
    if (whole && counted) deps.downloads!.count(counted, 'file');
  };
  if (fill) return followFill(reply, fill, deps.blobs, headers.range, done);
  let opened;
  try {
    opened = await deps.blobs.openCopy(file.sha256, headers.range);
  } catch (err) {
    reading();
    // Purged by hand (`wharf cache purge`) while this process thought it cached: fetch it again.
    if (!isAppError(err, ErrorCodes.notFound) || retried) throw err;
    deps.cache.forget(file.sha256);
    return serveCached(request, reply, deps, path, true);
  }
  return sendPieces(reply, [opened], done);
}

/**
 * Streams `range` of a file as its fill writes it, then from the store once it is stored. The
 * range's last byte waits for the fill's verdict and comes from the stored file, as the file's
 * last byte does: a failed fill cuts the connection, so no answer, whole file or range, is ever
 * complete with bytes that were not verified.
 */
function followFill(reply: FastifyReply, fill: Fill, blobs: BlobStore, range: ByteRange, done: (whole: boolean) => void): FastifyReply {
  reply.hijack();
  const out = reply.raw;
  out.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string>);
  const to = outlet(out);
  // send_timeout runs while a piece waits for the client, not while the fill waits for the
  // origin (whose own stall is the fill's idle timeout).
  const sendTimeoutMs = reply.server.sendTimeoutMs;
  let whole = false;
  (async () => {
    let position = range.start;
    // Up to the range's last byte, excluded.
    while (position < range.end) {
      const atLeast = position === range.start ? 1 : followPiece;
      const piece = await to.unlessGone(fill.read(position, Math.min(pieceSize, range.end - position), atLeast));
      if (piece === 'stored') break;
      out.setTimeout(sendTimeoutMs);
      await to.write(piece);
      out.setTimeout(0);
      position += piece.byteLength;
    }
    // The rest (at least that last byte) from the stored file, once the fill verified it.
    await to.unlessGone(fill.finished);
    if (fill.error) throw fill.error;
    out.setTimeout(sendTimeoutMs);
    await (await blobs.openCopy(fill.sha256, { start: position, end: range.end })).copyTo(out);
    out.setTimeout(0);
    whole = true;
    out.end();
  })()
    .catch((err: unknown) => {
      if (!out.destroyed) noteFailure(out, err);
      out.destroy();
    })
    .finally(() => {
      to.release();
      done(whole);
    });
  return reply;
}
