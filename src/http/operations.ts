/**
 * What an operator's tools ask: `/healthz` (the process answers), `/readyz` (it serves: the index
 * is loaded and it is not shutting down) and `/metrics` (Prometheus text, summed over every
 * serving process).
 *
 * Who may read /metrics on the serving ports: loopback, the `metrics_allow` networks and, on a
 * server with a trust store, trusted client certificates; anyone else gets a 403. A request a
 * proxy relayed (it carries X-Forwarded-For, Forwarded or X-Real-IP) is judged by the client the
 * proxy names, and only when the proxy is a trusted one: behind a reverse proxy on the same host,
 * every request comes from loopback, and that must not open /metrics to the world. With
 * `metrics_listen`, /metrics moves to a listener of its own, open to whoever reaches it, and the
 * serving ports no longer answer it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AddressList, clientAddress, loopback } from '../addresses.ts';
import { AppError, ErrorCodes, notFound } from '../errors.ts';
import { joinedHeader } from './conditional.ts';

export interface OperationsDeps {
  ready: () => boolean;
  metrics: () => Promise<{ contentType: string; body: string }>;
  /**
   * `checked`: the rules above (the serving ports); `open`: anyone (the metrics_listen listener);
   * `elsewhere`: not here (served on metrics_listen).
   */
  metricsAccess: 'checked' | 'open' | 'elsewhere';
  /** CIDRs besides loopback whose clients may read /metrics. */
  metricsAllow: string[];
  /** Proxies whose X-Forwarded-For is believed (trusted_proxies). */
  trustedProxies: string[];
  /** Whether the request comes with a trusted client certificate (servers with a trust store). */
  trustedClient?: (request: FastifyRequest) => Promise<boolean>;
}

/** The headers by which a proxy says a request is not its own. */
const relayHeaders = ['x-forwarded-for', 'forwarded', 'x-real-ip'];

export function operationsRoutes(app: FastifyInstance, deps: OperationsDeps) {
  const allowed = new AddressList([...loopback, ...deps.metricsAllow]);
  const proxies = new AddressList(deps.trustedProxies);
  const text = 'text/plain; charset=utf-8';
  /** The address /metrics judges a request by; undefined when it cannot be known. */
  const reader = (request: FastifyRequest) => {
    const peer = request.raw.socket.remoteAddress;
    if (!relayHeaders.some((h) => request.headers[h] !== undefined)) return peer;
    // Relayed: the peer is a proxy, whatever its address. Only a trusted one may name the client,
    // in X-Forwarded-For (what trusted_proxies are believed in everywhere).
    const forwardedFor = joinedHeader(request.headers['x-forwarded-for']);
    if (!proxies.has(peer) || !forwardedFor?.trim()) return undefined;
    return clientAddress(peer, forwardedFor, proxies);
  };
  app.get('/healthz', async (_request, reply) => reply.header('cache-control', 'no-store').type(text).send('ok\n'));
  app.get('/readyz', async (_request, reply) => {
    const ready = deps.ready();
    return reply.code(ready ? 200 : 503).header('cache-control', 'no-store').type(text).send(ready ? 'ready\n' : 'not ready\n');
  });
  app.get('/metrics', async (request, reply) => {
    if (deps.metricsAccess === 'elsewhere') throw notFound('/metrics is served on metrics_listen');
    if (deps.metricsAccess === 'checked') {
      const ok = allowed.has(reader(request)) || (deps.trustedClient !== undefined && (await deps.trustedClient(request)));
      if (!ok) throw new AppError(ErrorCodes.forbidden, 'metrics are answered to loopback, metrics_allow and trusted clients only');
    }
    const { contentType, body } = await deps.metrics();
    return reply.header('cache-control', 'no-store').type(contentType).send(body);
  });
}
