/**
 * Who calls the LXD API: the client certificate a TLS connection presented, whether the trust
 * store knows it, and a one-time secret from the query. Anything a caller may not do is
 * `forbidden`, raised before the request is looked at any further.
 */
import type { FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import type { Store } from '../../core/context.ts';
import { parseCertificate } from '../../core/trust.ts';
import type { Viewer } from '../../core/visibility.ts';
import { certificateFingerprint } from '../../domain/fingerprint.ts';
import { AppError, ErrorCodes } from '../../errors.ts';

export type Query = { recursion?: string; filter?: string; secret?: string; project?: string };

export function clientCertificate(request: FastifyRequest) {
  const socket = request.raw.socket as TLSSocket;
  if (!socket.encrypted) return undefined;
  const peer = socket.getPeerCertificate();
  return peer?.raw ? parseCertificate(peer.raw) : undefined;
}

export async function viewerOf(store: Store, request: FastifyRequest): Promise<Viewer> {
  const cert = clientCertificate(request);
  const record = cert && (await store.meta.getCertificate(certificateFingerprint(cert)));
  // A repeated ?secret= arrives as a list: that is no secret.
  const secret: unknown = (request.query as Query).secret;
  return { trusted: record !== undefined, secret: typeof secret === 'string' ? secret : undefined, ...(record?.channels ? { channels: record.channels } : {}), ...(record ? { name: record.name } : {}) };
}

export const notAuthorized = () => new AppError(ErrorCodes.forbidden, 'not authorized');

/**
 * The viewer, who must be trusted: with every channel (anything it may change), or `reading`,
 * also one restricted to channels (it sees the private images of its channels only).
 */
export async function requireTrusted(store: Store, request: FastifyRequest, options: { reading?: boolean } = {}): Promise<Viewer> {
  const viewer = await viewerOf(store, request);
  if (!viewer.trusted) throw notAuthorized();
  if (viewer.channels && !options.reading) throw new AppError(ErrorCodes.forbidden, `This certificate may read the channels ${viewer.channels.join(', ')} only`);
  return viewer;
}

/** `?recursion=1` (or any level but 0): objects instead of their URLs. */
export function recursive(request: FastifyRequest): boolean {
  const recursion = (request.query as Query).recursion;
  return Boolean(recursion && recursion !== '0');
}
