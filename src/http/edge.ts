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
import { isAppError, ErrorCodes, notFound } from '../errors.ts';
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
  if (!answer) throw notFound(`The origin lists no file ${path.slice(0, 200)}`);
  reply.header('x-wharf-cache', answer.kind === 'hit' ? 'HIT' : 'MISS');
  if (answer.kind === 'fill') {
    // An origin that is down or refuses the file is an error answer, not a cut-off body; one that
    // is slow to answer still gets our headers in time (clients wait 30 s for them).
    await Promise.race([answer.fill.answered, sleep(originAnswerWaitMs, undefined, { ref: false })]);
  }
  const headers = fileHeaders(request, reply, answer.file);
  if ('sent' in headers) return headers.sent;
  const reading = deps.cache.reading(answer.file.sha256);
  // A body that brings the client the whole file (HEAD and 304 were answered above) counts once
  // every byte was handed over.
  const counted = deps.downloads && answer.file.counted && completesDownload(request.headers.range, headers.range, answer.file.size) ? answer.file.counted : undefined;
  const done = (whole: boolean) => {
    reading();
    if (whole && counted) deps.downloads!.count(counted, 'file');
  };
  if (answer.kind === 'fill') return followFill(reply, answer.fill, deps.blobs, headers.range, done);
  let opened;
  try {
    opened = await deps.blobs.openCopy(answer.file.sha256, headers.range);
  } catch (err) {
    reading();
    // Purged by hand (`wharf cache purge`) while this process thought it cached: fetch it again.
    if (!isAppError(err, ErrorCodes.notFound) || retried) throw err;
    deps.cache.forget(answer.file.sha256);
    return serveCached(request, reply, deps, path, true);
  }
  return sendPieces(reply, [opened], done);
}

/**
 * Streams `range` of a file as its fill writes it, then from the store once it is stored. A
 * failed fill cuts the connection (the client sees a short body, never wrong bytes).
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
    const end = range.end + 1;
    for (let position = range.start; position < end; ) {
      const atLeast = position === range.start ? 1 : followPiece;
      const piece = await to.unlessGone(fill.read(position, Math.min(pieceSize, end - position), atLeast));
      out.setTimeout(sendTimeoutMs);
      if (piece === 'stored') {
        await (await blobs.openCopy(fill.sha256, { start: position, end: range.end })).copyTo(out);
        break;
      }
      await to.write(piece);
      out.setTimeout(0);
      position += piece.byteLength;
    }
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
