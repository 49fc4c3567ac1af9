/**
 * What an operator's tools ask: `/healthz` (the process answers), `/readyz` (it serves: the index
 * is loaded and it is not shutting down) and `/metrics` (Prometheus text, summed over every
 * serving process). Metrics are answered to loopback, to the `metrics_allow` networks and, on a
 * server with a trust store, to trusted client certificates; anyone else gets a 403.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AddressList, loopback } from '../addresses.ts';
import { AppError, ErrorCodes } from '../errors.ts';

export interface OperationsDeps {
  ready: () => boolean;
  metrics: () => Promise<{ contentType: string; body: string }>;
  /** CIDRs besides loopback whose clients may read /metrics. */
  metricsAllow: string[];
  /** Whether the request comes with a trusted client certificate (servers with a trust store). */
  trustedClient?: (request: FastifyRequest) => Promise<boolean>;
}

export function operationsRoutes(app: FastifyInstance, deps: OperationsDeps) {
  const allowed = new AddressList([...loopback, ...deps.metricsAllow]);
  const text = 'text/plain; charset=utf-8';
  app.get('/healthz', async (_request, reply) => reply.header('cache-control', 'no-store').type(text).send('ok\n'));
  app.get('/readyz', async (_request, reply) => {
    const ready = deps.ready();
    return reply.code(ready ? 200 : 503).header('cache-control', 'no-store').type(text).send(ready ? 'ready\n' : 'not ready\n');
  });
  app.get('/metrics', async (request, reply) => {
    const ok = allowed.has(request.raw.socket.remoteAddress) || (deps.trustedClient !== undefined && (await deps.trustedClient(request)));
    if (!ok) throw new AppError(ErrorCodes.forbidden, 'metrics are answered to loopback, metrics_allow and trusted clients only');
    const { contentType, body } = await deps.metrics();
    return reply.header('cache-control', 'no-store').type(contentType).send(body);
  });
}
