/**
 * `wharf serve`: config -> store -> publisher -> HTTP listeners, plus the periodic jobs.
 * Returned as a handle so tests start real servers on port 0 and stop them again.
 */
import type { Config } from './config.ts';
import { parseAddress } from './config.ts';
import type { Logger } from './log.ts';
import { openGrants, openStore, openUsage, openWebhooks } from './factory.ts';
import { WebhookDispatcher, startWebhooks } from './pipeline/webhooks.ts';
import { DownloadCounter } from './core/usage.ts';
import { IndexPublisher } from './core/publish.ts';
import { collectGarbage } from './core/collect.ts';
import { BlobRedirects } from './core/blob-redirects.ts';
import { applyRetention } from './core/retention.ts';
import { buildApp } from './http/app.ts';
import { listenDual, listenLimits, listenPlain, type Listener } from './http/listen.ts';
import { listenMetrics, type MetricsListener } from './http/metrics-listener.ts';
import { loadTlsIdentity, selfSigned, recordServedCertificate, type TlsIdentity } from './tls.ts';
import { loadCatalogueAssets } from './web/assets.ts';
import { ImageSecrets } from './core/secrets.ts';
import { startScheduler } from './mirror/scheduler.ts';
import { FetchThroughBlobs } from './mirror/lazy.ts';
import { startReplicas, type Replicas } from './replicas.ts';
import { startMirrorServer } from './mirror-server.ts';
import { loadSigner } from './signing/key-file.ts';
import { Steering } from './steering/steer.ts';
import { openGeoIp } from './steering/geoip.ts';
import { startSiteChecks } from './steering/checker.ts';
import { startPipeline } from './pipeline/stage.ts';
import { whileLeading } from './core/lease.ts';
import { instanceId } from './instance.ts';
import { RegistryCounts, RequestCounts, serverMetrics } from './metrics/server-metrics.ts';
import { OciCache } from './mirror/oci-cache.ts';
import { firstProcessMetrics, render, replicaMetrics } from './metrics/gather.ts';
import type { Registry } from 'prom-client';
import type { Threshold } from './log.ts';
import packageJson from '../package.json' with { type: 'json' };
import { availableParallelism } from 'node:os';
import { randomBytes } from 'node:crypto';

const packageVersion: string = packageJson.version;

export interface RunningServer {
  httpsPort: number;
  httpPort: number | undefined;
  /** The metrics_listen listener's port (first process only). */
  metricsPort?: number | undefined;
  tls: TlsIdentity;
  /** This process's own metrics (the first process sums every process's for /metrics). */
  metrics: Registry;
  /** A new log level, here and in every other serving process (SIGHUP). */
  setLogLevel(level: Threshold): void;
  /**
   * Stops serving: /readyz turns 503, no new connections, downloads in progress get up to
   * `graceMs` to finish (default 0: cut at once), then everything is closed.
   */
  close(graceMs?: number): Promise<void>;
}

const gcIntervalMs = 10 * 60_000;
/** Servers this process started: each competes for the jobs as a holder of its own (tests start several). */
let serversStarted = 0;

export interface ServerRole {
  /** Set in an extra serving process: the first process's ports and session ticket keys. */
  replicaOf?: { https: number; http: number | undefined; ticketKeys: Buffer };
}

export async function startServer(config: Config, log: Logger, role: ServerRole = {}): Promise<RunningServer> {
  if (config.mirrorOf !== undefined) return startMirrorServer({ ...config, mirrorOf: config.mirrorOf }, log);
  const replica = role.replicaOf;
  const processes = config.serveProcesses || availableParallelism();
  const sharePort = replica ? ('join' as const) : processes > 1 ? ('first' as const) : undefined;
  const ticketKeys = replica?.ticketKeys ?? randomBytes(48);
  const opened = await openStore(config, log);
  const grants = await openGrants(config, log);
  const usage = await openUsage(config, log);
  // Only the first process sends webhooks (in the background jobs).
  const webhooks = !replica && config.webhooks.length ? await openWebhooks(config, log) : undefined;
  const downloads = config.countDownloads ? new DownloadCounter(usage, log) : undefined;
  downloads?.start();
  // Files of lazy mirrors are fetched from upstream on first request, behind every view.
  const store = { ...opened, blobs: new FetchThroughBlobs(opened.blobs, opened.meta, log, grants) };
  // Who this server is to the leases and claims it takes (several servers may run in one process).
  const holder = `${instanceId}/server-${++serversStarted}`;
  const dispatcher = webhooks && new WebhookDispatcher(store.meta, webhooks, config.webhooks, holder, log);
  if (!replica) await store.blobs.cleanStaging();
  const tls = await loadTlsIdentity({ dataDir: config.dataDir, certPath: config.tlsCert, keyPath: config.tlsKey });
  if (!replica) await recordServedCertificate(config.dataDir, tls.cert);
  const assets = await loadCatalogueAssets();
  const publisher = new IndexPublisher(store, {
    signer: await loadSigner(config.dataDir, config.signingKey),
    catalogue: { assets, selfSignedFingerprint: selfSigned(tls.cert) ? tls.fingerprint : undefined, version: packageVersion },
  });
  await publisher.refresh();
  publisher.start();

  const steering = config.geoipDb
    ? new Steering({ meta: store.meta, geoip: await openGeoIp(config.geoipDb), trustedProxies: config.trustedProxies, log })
    : undefined;
  await steering?.start();
  const redirects = config.blobRedirect ? new BlobRedirects(store.blobs, grants, log) : undefined;

  let httpsPort = 0;
  let draining = false;
  const listeners: Listener[] = [];
  let replicas: Replicas | undefined;
  const counts = new RequestCounts();
  const registry = { cache: new OciCache(store, { ttlMs: config.ociCacheTtl * 1000, leases: grants, credentials: config.registryCredentials }), counts: new RegistryCounts(), privateGlobs: config.registryPrivate };
  const metrics = serverMetrics({ requests: counts, handshakes: () => listeners.reduce((n, l) => n + l.handshakes, 0), publisher, blobs: opened.blobs, ...(downloads ? { downloads } : {}), ...(steering ? { steering } : {}), ...(dispatcher ? { webhooks: dispatcher } : {}), registry });
  const first = replica ? undefined : firstProcessMetrics(metrics, () => replicas?.channels() ?? []);
  const gather = first ? first.gather : replicaMetrics(metrics, process).gather;
  const operations = { ready: () => !draining, metrics: async () => render(await gather()) };
  let metricsListener: MetricsListener | undefined;
  const { app, handler } = await buildApp({
    registry,
    counts,
    downloads,
    catalogue: { usage, assets },
    operations: { ...operations, metricsAccess: config.metricsListen ? 'elsewhere' : 'checked', metricsAllow: config.metricsAllow, trustedProxies: config.trustedProxies },
    steering,
    redirects,
    store,
    publisher,
    log,
    httpsPort: () => httpsPort,
    secrets: new ImageSecrets(grants),
    grants,
    tls,
    version: packageVersion,
    maxUploadSize: config.maxUploadSize,
    sendTimeoutMs: config.sendTimeout * 1000,
  });
  try {
    const https = parseAddress(config.https)!;
    const limits = { ...listenLimits(config), sharePort };
    const dual = await listenDual(https.host, replica?.https ?? https.port, handler, { ...tls, ticketKeys }, limits);
    listeners.push(dual);
    httpsPort = dual.port;
    if (config.http) {
      const http = parseAddress(config.http)!;
      listeners.push(await listenPlain(http.host, replica?.http ?? http.port, handler, limits));
    }
    if (!replica && config.metricsListen) metricsListener = await listenMetrics(parseAddress(config.metricsListen)!, operations, log, listenLimits(config));
    if (!replica && processes > 1) {
      const job = { config, ports: { https: httpsPort, http: listeners[1]?.port }, ticketKeys: ticketKeys.toString('hex'), logLevel: log.threshold };
      replicas = await startReplicas(processes - 1, job, log, first?.answer);
    }
  } catch (err) {
    await replicas?.stop();
    await metricsListener?.close();
    await metricsListener?.closeApp();
    // Stop the index poll too, or it would query the closed database and log about it.
    publisher.stop();
    steering?.stop();
    await Promise.all(listeners.map((l) => l.close()));
    await app.close();
    await downloads?.stop();
    await usage.close();
    await webhooks?.close();
    await grants.close();
    await store.meta.close();
    await store.blobs.close();
    throw err;
  }

  // The background jobs (mirror syncs, auto-update, garbage collection, site checks) run in one
  // process of all those sharing the store, the holder of the 'jobs' lease; the others only
  // serve, and one of them takes the jobs over within the lease's time to live if it dies. Every
  // process reads the outcome of the site checks (Steering reloads them).
  const jobs = replica
    ? undefined
    : whileLeading(grants, 'jobs', () => {
        const scheduler = startScheduler(store, { autoUpdateSeconds: config.autoUpdateInterval, remoteCacheExpiryDays: config.remoteCacheExpiry, registryCredentials: config.registryCredentials });
        const gc = setInterval(() => {
          applyRetention(store)
            .catch((err: unknown) => log.error('channel retention failed', { err }))
            .then(() => collectGarbage(store, { stagingIdleMs: config.uploadTtl * 1000 }))
            .catch((err: unknown) => log.error('garbage collection failed', { err }))
            .then(() => redirects?.consolidateAll())
            .catch((err: unknown) => log.error('consolidating blobs for redirects failed', { err }));
        }, gcIntervalMs);
        gc.unref();
        const siteChecks = startSiteChecks(store.meta, { publisher, blobs: opened.blobs }, config.siteCheckInterval * 1000, log);
        const pipeline = startPipeline(store, config.testHooks, { gateWaitMs: config.gateWait * 1000 });
        const sender = dispatcher && startWebhooks(dispatcher, log);
        return {
          async stop() {
            clearInterval(gc);
            await scheduler.stop();
            await siteChecks.stop();
            await pipeline.stop();
            await sender?.stop();
          },
        };
      }, { holder, onChange: (leading) => log.info(leading ? 'running the background jobs' : 'no longer running the background jobs') });

  let closing: Promise<void> | undefined;
  if (!replica) log.info('listening', { https: httpsPort, http: listeners[1]?.port, processes, certificate: tls.certPath, fingerprint: tls.fingerprint });
  return {
    httpsPort,
    httpPort: listeners[1]?.port,
    metricsPort: metricsListener?.port,
    tls,
    metrics,
    setLogLevel: (level) => {
      log.setThreshold(level);
      replicas?.send({ type: 'log-level', level });
    },
    // Once, however many callers ask.
    close: (graceMs = 0) =>
      (closing ??= (async () => {
        draining = true;
        await Promise.all([replicas?.stop(graceMs), ...listeners.map((l) => l.close(graceMs)), metricsListener?.close()]);
        await metricsListener?.closeApp();
        await jobs?.stop();
        steering?.stop();
        publisher.stop();
        await app.close();
        // After the listeners: downloads that finished while draining are counted too.
        await downloads?.stop();
        await usage.close();
    await webhooks?.close();
        await grants.close();
        await store.meta.close();
        await store.blobs.close();
      })()),
  };
}
