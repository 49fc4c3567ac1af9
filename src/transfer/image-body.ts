/**
 * The body LXD uses to move an image, in both directions: the export of GET /1.0/images/FP/export
 * and the upload of POST /1.0/images. A unified image is the raw file; a split image is
 * multipart/form-data with a `metadata` part then a `rootfs` (or `rootfs.img`) part. Parts are
 * handed out as streams, in order, never buffered.
 */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import { AppError, ErrorCodes } from '../errors.ts';
import type { IngestSource } from '../core/ingest.ts';

/**
 * Counts bytes as they pass and refuses to go past the limit. The stream is not destroyed when
 * reading stops early, so the connection survives to carry the error response.
 */
async function* limited(stream: Readable, limit: number, seen: { bytes: number }): AsyncIterable<Uint8Array> {
  for await (const chunk of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>) {
    seen.bytes += chunk.byteLength;
    if (seen.bytes > limit) throw new AppError(ErrorCodes.tooLarge, `Upload is larger than the limit of ${limit} bytes`);
    yield chunk;
  }
}

/** The image's files, in order, as sources for importImage. */
export async function imageBodySources(raw: IncomingMessage, limit: number, filename: string | undefined): Promise<IngestSource[]> {
  const type = String(raw.headers['content-type'] ?? '');
  const seen = { bytes: 0 };
  const declared = Number(raw.headers['content-length'] ?? 0);
  if (declared > limit) throw new AppError(ErrorCodes.tooLarge, `Upload is larger than the limit of ${limit} bytes`);
  if (!type.startsWith('multipart/form-data')) return [{ name: filename || 'upload', chunks: limited(raw, limit, seen) }];
  return multipartSources(raw, limit, seen);
}

/**
 * busboy emits parts in order and waits while one is not consumed, so the first part is handed
 * out as soon as it starts and the second once the first has been read to its end.
 */
function multipartSources(raw: IncomingMessage, limit: number, seen: { bytes: number }): Promise<IngestSource[]> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: raw.headers, limits: { files: 2, fields: 0 } });
    } catch (err) {
      reject(new AppError(ErrorCodes.invalidArgument, `Invalid multipart upload: ${(err as Error).message}`));
      return;
    }
    const parts: { name: string; stream: Readable }[] = [];
    const waiting: ((part: { name: string; stream: Readable } | Error) => void)[] = [];
    const streams: Readable[] = [];
    let failure: Error | undefined;
    const deliver = (part: { name: string; stream: Readable } | Error) => {
      const next = waiting.shift();
      if (next) next(part);
      else if (part instanceof Error) failure ??= part;
      else parts.push(part);
    };
    // busboy is fed through pipe(), which does not pass on an aborted body: without this, a client
    // that drops mid-upload leaves every read of a part waiting forever, with its staging file open.
    raw.once('close', () => {
      if (raw.complete) return;
      const cut = new AppError(ErrorCodes.invalidArgument, 'The upload was cut off before it was complete');
      failure ??= cut;
      for (const next of waiting.splice(0)) next(cut);
      for (const stream of streams) if (!stream.readableEnded) stream.destroy(cut);
      parser.destroy();
    });
    parser.on('file', (field, stream, info) => {
      // A part that is never read (its import already failed) may still fail: its reader, if any,
      // sees the error through iteration; unobserved, it would crash the process.
      stream.on('error', () => {});
      streams.push(stream);
      deliver({ name: info.filename || field, stream });
      if (field !== 'metadata' && field !== 'rootfs' && field !== 'rootfs.img') {
        deliver(new AppError(ErrorCodes.invalidArgument, `Invalid multipart image: unexpected part "${field}"`));
      }
    });
    parser.on('error', (err: Error) => deliver(new AppError(ErrorCodes.invalidArgument, `Invalid multipart upload: ${err.message}`)));
    parser.on('close', () => deliver(new AppError(ErrorCodes.invalidArgument, 'Invalid multipart image: expected a metadata and a rootfs part')));
    raw.pipe(parser);

    const nextPart = () =>
      new Promise<{ name: string; stream: Readable }>((res, rej) => {
        if (failure) return rej(failure);
        const ready = parts.shift();
        if (ready) return res(ready);
        waiting.push((p) => (p instanceof Error ? rej(p) : res(p)));
      });
    async function* partChunks(index: number): AsyncIterable<Uint8Array> {
      const part = index === 0 ? await first : await second();
      yield* limited(part.stream, limit, seen);
    }
    const first = nextPart();
    let secondPart: Promise<{ name: string; stream: Readable }> | undefined;
    const second = () => (secondPart ??= nextPart());
    first.then(
      (part) =>
        resolve([
          { name: part.name, chunks: partChunks(0) },
          { name: 'rootfs', chunks: partChunks(1) },
        ]),
      reject,
    );
  });
}
