/** Bytes ready for the wire: the body, its gzip form and an ETag, computed once when rendered. */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

export interface RenderedDocument {
  body: Buffer;
  gzip: Buffer;
  etag: string;
  contentType: string;
}

export function renderJson(value: unknown): RenderedDocument {
  return renderBytes(Buffer.from(JSON.stringify(value)), 'application/json');
}

export function renderBytes(body: Buffer, contentType: string): RenderedDocument {
  return {
    body,
    gzip: gzipSync(body),
    etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`,
    contentType,
  };
}
