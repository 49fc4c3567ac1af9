/**
 * `GET|HEAD /1.0/images/FP/export`: an image as LXD exports it, a unified file with its name in
 * Content-Disposition, or a split image as multipart/form-data with `metadata` then `rootfs`
 * (`rootfs.img` for a VM) parts. A one-time secret opens a private image for one download.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { OpenedBlob } from '../../blob/store.ts';
import type { Store } from '../../core/context.ts';
import { exportedFiles, type ImageWithAliases } from '../../core/images.ts';
import type { ImageSecrets } from '../../core/secrets.ts';
import { seesPrivate, visibleImage } from '../../core/visibility.ts';
import { AppError, ErrorCodes, notFound } from '../../errors.ts';
import { recorded, sendPieces } from '../send-blob.ts';
import { viewerOf } from './caller.ts';
import { fingerprintParam } from './images.ts';
import { productOf } from '../../domain/product.ts';
import type { DownloadCounter } from '../../core/usage.ts';

export function imageExportRoutes(app: FastifyInstance, deps: { store: Store; secrets: ImageSecrets; downloads: DownloadCounter | undefined }) {
  const { store, secrets, downloads } = deps;
  // HEAD declared here: the route Fastify would derive from GET sends Content-Length 0.
  app.route({
    method: ['GET', 'HEAD'],
    url: '/1.0/images/:fingerprint/export',
    handler: async (request, reply) => {
      const viewer = await viewerOf(store, request);
      const image = await visibleImage(store, viewer, secrets, fingerprintParam(request));
      // A secret opens one download at a time, spent once a response went out whole; HEAD is free.
      const secret = !seesPrivate(viewer, image) && !image.public && request.method === 'GET' ? viewer.secret : undefined;
      const claim = secret ? await secrets.claim(secret) : undefined;
      if (claim === 'busy') throw new AppError(ErrorCodes.conflict, 'Another download is using this secret');
      if (claim === 'spent') throw notFound('Image not found');
      // Settled once the whole body was handed to the socket (not at 'close': a client that has
      // every byte may hang up first): the download counts and its secret is spent. A failed or
      // cut download frees the secret for a retry.
      let settled = false;
      const settle = (whole: boolean) => {
        if (settled) return;
        settled = true;
        const completed = whole && reply.raw.statusCode === 200;
        if (completed) downloads?.count({ fingerprint: image.fingerprint, product: productOf(image, store.releaseNames).key }, 'export');
        claim?.settle(completed).catch((err: unknown) => store.log.error('settling a secret failed', { err }));
      };
      try {
        return await sendExport(request, reply, store, image, settle);
      } catch (err) {
        settle(false);
        throw err;
      }
    },
  });
}

async function sendExport(request: FastifyRequest, reply: FastifyReply, store: Store, image: ImageWithAliases, onSent?: (whole: boolean) => void) {
  const files = exportedFiles(image);
  // Incus clients read the image format from this ("incus", or "oci" which wharf never stores).
  reply.header('x-content-type-options', 'nosniff').header('x-incus-type', 'incus');
  if (files.length === 1) {
    const [file] = files as [(typeof files)[0]];
    reply
      .header('content-type', 'application/octet-stream')
      .header('content-disposition', `inline;filename=${file.name}`)
      .header('content-length', String(file.blob.size));
    if (request.method === 'HEAD') return reply.send();
    return sendPieces(reply, [await store.blobs.openCopy(file.blob.sha256, recorded(file.blob))], onSent);
  }
  const boundary = `wharf-${image.fingerprint.slice(0, 24)}`;
  const partHeader = (name: string, filename: string, first: boolean) =>
    Buffer.from(
      `${first ? '' : '\r\n'}--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
  const parts = files.map((f, i) => ({
    header: partHeader(f.role === 'metadata' ? 'metadata' : image.type === 'virtual-machine' ? 'rootfs.img' : 'rootfs', f.name, i === 0),
    file: f,
  }));
  const trailer = Buffer.from(`\r\n--${boundary}--\r\n`);
  const length = parts.reduce((n, p) => n + p.header.length + p.file.blob.size, trailer.length);
  reply.header('content-type', `multipart/form-data; boundary=${boundary}`).header('content-length', String(length));
  if (request.method === 'HEAD') return reply.send();
  // Open both before the headers go out, so a missing file is an error response, not a cut body;
  // if the second cannot be opened, the first is released.
  const copies: OpenedBlob[] = [];
  try {
    for (const part of parts) copies.push(await store.blobs.openCopy(part.file.blob.sha256, recorded(part.file.blob)));
  } catch (err) {
    await Promise.all(copies.map((c) => c.close()));
    throw err;
  }
  return sendPieces(reply, [...parts.flatMap((part, i) => [part.header, copies[i]!]), trailer], onSent);
}
