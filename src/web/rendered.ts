/** Bytes ready for the wire: the body, its gzip form and an ETag, computed once when rendered. */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

export interface RenderedDocument {
  body: Buffer;
  gzip: Buffer;
  etag: string;
  contentType: string;
}

/**
 * Documents already rendered, by ETag and type: renderings that come out the same bytes (the
 * client views of an index without the images that set them apart) share one copy and one gzip.
 */
export type Renderings = Map<string, RenderedDocument>;

export function renderJson(value: unknown, seen?: Renderings): RenderedDocument {
  return renderBytes(Buffer.from(JSON.stringify(value)), 'application/json', seen);
}

export function renderBytes(body: Buffer, contentType: string, seen?: Renderings): RenderedDocument {
  const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
  const key = `${etag} ${contentType}`;
  const known = seen?.get(key);
  if (known) return known;
  const rendered = { body, gzip: gzipSync(body), etag, contentType };
  seen?.set(key, rendered);
  return rendered;
}
