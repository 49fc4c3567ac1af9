/**
 * `metrics_listen`: a plain-HTTP listener of its own for the operator's tools (/metrics,
 * /healthz, /readyz, nothing else), opened by the first serving process. /metrics there is open
 * to whoever reaches it, as a Prometheus exporter's port is: bind it to an address only the
 * monitoring reaches (127.0.0.1, an internal network), which no reverse proxy in front of the
 * serving ports relays.
 */
import type { Logger } from '../log.ts';
import { baseApp } from './app.ts';
import { listenPlain, type ListenOptions, type Listener } from './listen.ts';
import { operationsRoutes, type OperationsDeps } from './operations.ts';

export type MetricsListener = Listener & { closeApp(): Promise<void> };

export async function listenMetrics(address: { host: string; port: number }, deps: Pick<OperationsDeps, 'ready' | 'metrics'>, log: Logger, limits: ListenOptions): Promise<MetricsListener> {
  const { app, handler } = baseApp(log);
  operationsRoutes(app, { ...deps, metricsAccess: 'open', metricsAllow: [], trustedProxies: [] });
  await app.ready();
  const listener = await listenPlain(address.host, address.port, handler(), limits);
  return Object.assign(listener, { closeApp: () => app.close() });
}
