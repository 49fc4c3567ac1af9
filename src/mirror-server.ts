/**
 * `wharf serve` in mirror mode (`mirror_of` set): a verified pull-through cache of an origin.
 * Composition only: cache store -> origin index -> cache -> edge routes -> listeners. One
 * process serves (a miss is shared by every reader through its in-process fill).
 */
import { cacheLocation } from './cache/location.ts';
import type { Config } from './config.ts';
import { parseAddress } from './config.ts';
import type { Logger } from './log.ts';
import { FsBlobStore } from './blob/fs.ts';
import { ensureDirectory } from './directories.ts';
import { openDataDirectory, openUsage } from './factory.ts';
import { DownloadCounter } from './core/usage.ts';
import { OriginIndex } from './cache/origin-index.ts';
import { EdgeCache } from './cache/edge-cache.ts';
import { startRecheck } from './cache/recheck.ts';
import { baseApp } from './http/app.ts';
import { edgeRoutes } from './http/edge.ts';
import { listenDual, listenLimits, listenPlain, type Listener } from './http/listen.ts';
import { listenMetrics, type MetricsListener } from './http/metrics-listener.ts';
import { loadTlsIdentity } from './tls.ts';
import { readFile } from 'node:fs/promises';
import { AppError, ErrorCodes } from './errors.ts';
import type { FetchOptions } from './remote/fetch.ts';
import { checkSignature } from './remote/signed.ts';
import { readPublicKeys } from './signing/openpgp.ts';
import { noGeoIpHeader } from './steering/checker.ts';
import type { RunningServer } from './server.ts';
import { operationsRoutes } from './http/operations.ts';
import { mirrorRouteOf, RequestCounts, serverMetrics } from './metrics/server-metrics.ts';
import { render } from './metrics/gather.ts';

/** The cache of a data directory, opened (also by `wharf cache`). */
export async function openCache(config: Config & { mirrorOf: string }, log: Logger): Promise<{ cache: EdgeCache; index: OriginIndex; blobs: FsBlobStore }> {
  const where = cacheLocation(config.dataDir);
  await openDataDirectory(config.dataDir);
  await ensureDirectory(where.dir);
  const blobs = new FsBlobStore(where.blobs);
  await blobs.init();
  // An origin that steers downloads must answer its mirrors itself, never redirect them.
  const fetch: FetchOptions = { headers: noGeoIpHeader, ...(config.originCertificate ? { certificate: await readSetting('origin_certificate', config.originCertificate) } : {}) };
  // With the origin's key, an index whose signature does not verify is never believed.
  const originKey = config.originKey ? await readSetting('origin_key', config.originKey) : undefined;
  if (originKey) await readPublicKeys(originKey);
  const verify = originKey ? (path: string, body: Uint8Array, signal: AbortSignal) => checkSignature(config.mirrorOf, path, body, { ...fetch, signal }, originKey) : undefined;
  const index = new OriginIndex({
    origin: config.mirrorOf,
    fetch,
    statePath: where.originIndex,
    graceMs: config.gracePeriod * 1000,
    log,
    documentDeadlineMs: config.originTimeout * 1000,
    ...(verify ? { verify } : {}),
  });
  await index.load();
  const cache = new EdgeCache({
    blobs,
    index,
    fetch,
    maxSize: config.cacheMaxSize,
    inactiveMs: config.cacheInactive * 1000,
    maxFills: config.cacheMaxFills,
    maxFillsPerAddress: config.cacheMaxFillsPerAddress,
    log,
  });
  await cache.load();
  return { cache, index, blobs };
}

async function readSetting(setting: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new AppError(ErrorCodes.config, `${setting}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

const sweepEveryMs = 60_000;

export async function startMirrorServer(config: Config & { mirrorOf: string }, log: Logger): Promise<RunningServer> {
  const { cache, index, blobs } = await openCache(config, log);

  const tls = await loadTlsIdentity({ dataDir: config.dataDir, certPath: config.tlsCert, keyPath: config.tlsKey });
  const listeners: Listener[] = [];
  let draining = false;
  const counts = new RequestCounts(mirrorRouteOf);
  // Downloads served here are counted here (`wharf stats` on the mirror): the origin only learns
  // of those it steered.
  const usage = config.countDownloads ? await openUsage(config, log) : undefined;
  const downloads = usage ? new DownloadCounter(usage, log) : undefined;
  downloads?.start();
  const metrics = serverMetrics({ requests: counts, handshakes: () => listeners.reduce((n, l) => n + l.handshakes, 0), cache, ...(downloads ? { downloads } : {}) });
  const { app, handler } = baseApp(log, { counts, sendTimeoutMs: config.sendTimeout * 1000 });
  // Before the edge routes, whose catch-all answers every other path from the origin's index.
  const operations = {
    // Ready once there is an index to check files against (the origin's, or the one saved last).
    ready: () => !draining && index.known,
    metrics: async () => render([(await metrics.getMetricsAsJSON()) as object[]]),
  };
  operationsRoutes(app, { ...operations, metricsAccess: config.metricsListen ? 'elsewhere' : 'checked', metricsAllow: config.metricsAllow, trustedProxies: config.trustedProxies });
  let metricsListener: MetricsListener | undefined;
  edgeRoutes(app, { cache, blobs, origin: config.mirrorOf, downloads });
  await app.ready();

  const limits = listenLimits(config);
  try {
    const https = parseAddress(config.https)!;
    listeners.push(await listenDual(https.host, https.port, handler(), tls, limits));
    if (config.http) {
      const http = parseAddress(config.http)!;
      listeners.push(await listenPlain(http.host, http.port, handler(), limits));
    }
    if (config.metricsListen) metricsListener = await listenMetrics(parseAddress(config.metricsListen)!, operations, log, listenLimits(config));
  } catch (err) {
    // A port in use (another mirror on this data directory, say): nothing was touched yet.
    await Promise.all(listeners.map((l) => l.close()));
    await app.close();
    await downloads?.stop();
    await usage?.close();
    throw err;
  }
  // Only once the ports are ours: staging files of writers that are gone (a crash), never those
  // of another process still filling the same cache.
  await blobs.cleanStaging();
  // Served at once from the index saved by the last run (the origin may be slow, or down); the
  // origin's own is read in the background.
  void index.refresh().catch(() => {});
  index.start(config.originRefresh * 1000);
  const sweep = setInterval(() => void cache.sweep(), sweepEveryMs).unref();
  const recheck = config.cacheRecheck > 0 ? startRecheck(cache, blobs, config.cacheRecheck * 1000, log) : undefined;
  log.info('listening', { mirrorOf: config.mirrorOf, https: listeners[0]!.port, http: listeners[1]?.port, certificate: tls.certPath, fingerprint: tls.fingerprint });
  let closing: Promise<void> | undefined;
  return {
    httpsPort: listeners[0]!.port,
    httpPort: listeners[1]?.port,
    metricsPort: metricsListener?.port,
    tls,
    metrics,
    setLogLevel: (level) => log.setThreshold(level),
    close: (graceMs = 0) =>
      (closing ??= (async () => {
        draining = true;
        clearInterval(sweep);
        await recheck?.stop();
        await Promise.all([...listeners.map((l) => l.close(graceMs)), metricsListener?.close()]);
        await metricsListener?.closeApp();
        await index.stop();
        await app.close();
        // After the listeners: downloads that finished while draining are counted too.
        await downloads?.stop();
        await usage?.close();
        await cache.close();
      })()),
  };
}
