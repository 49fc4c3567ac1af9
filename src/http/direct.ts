/**
 * Direct-URL import: `lxc image import https://HOST:PORT/direct/ALIAS`. The daemon sends HEAD and
 * needs LXD-Image-URL and LXD-Image-Hash (Incus: Incus-Image-*); it then GETs that URL.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Store } from '../core/context.ts';
import { directImage } from '../core/direct.ts';
import { artifactPath } from '../core/publish.ts';
import { sendBlob } from './send-blob.ts';
import { httpsBase } from './base-url.ts';
import { productOf } from '../domain/product.ts';
import type { DownloadCounter } from '../core/usage.ts';

function clientArchitectures(request: FastifyRequest): string[] {
  const header = request.headers['lxd-server-architectures'] ?? request.headers['incus-server-architectures'] ?? '';
  return String(header)
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
}

export function directRoutes(app: FastifyInstance, deps: { store: Store; downloads: DownloadCounter | undefined }) {
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    // Fastify has decoded the path once already: decoding again would turn "100%25" into an error.
    const { '*': alias, channel } = request.params as { '*': string; channel?: string };
    const image = await directImage(deps.store, alias, clientArchitectures(request), channel);
    const url = `${httpsBase(request.raw)}/${artifactPath(image.metadata)}`;
    const headers = {
      'lxd-image-url': url,
      'lxd-image-hash': image.fingerprint,
      'incus-image-url': url,
      'incus-image-hash': image.fingerprint,
    };
    const { downloads } = deps;
    const counted = { fingerprint: image.fingerprint, product: productOf(image, deps.store.releaseNames).key };
    return sendBlob(request, reply, deps.store.blobs, image.metadata, { headers, onDownloaded: downloads && (() => downloads.count(counted, 'file')) });
  };
  app.route({ method: ['GET', 'HEAD'], url: '/direct/*', handler });
  // Under a channel's root: its own newest version answers the alias.
  app.route({ method: ['GET', 'HEAD'], url: '/:channel/direct/*', handler });
}
