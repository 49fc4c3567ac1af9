/**
 * `wharf serve`: config -> store -> publisher -> HTTP listeners, plus the periodic jobs.
 * Returned as a handle so tests start real servers on port 0 and stop them again.
 */
import type { Config } from './config.ts';
import { parseAddress } from './config.ts';
import type { Logger } from './log.ts';
import { openGrants, openStore } from './factory.ts';
import { IndexPublisher } from './core/publish.ts';
import { collectGarbage } from './core/collect.ts';
import { buildApp } from './http/app.ts';
import { listenDual, listenPlain, type Listener } from './http/listen.ts';
import { loadTlsIdentity, type TlsIdentity } from './tls.ts';
import { ImageSecrets } from './core/secrets.ts';
import { startScheduler } from './mirror/scheduler.ts';
import { FetchThroughBlobs } from './mirror/lazy.ts';
import packageJson from '../package.json' with { type: 'json' };

const packageVersion: string = packageJson.version;

export interface RunningServer {
  httpsPort: number;
  httpPort: number | undefined;
  tls: TlsIdentity;
  close(): Promise<void>;
}

const gcIntervalMs = 10 * 60_000;

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const opened = await openStore(config, log);
  // Files of lazy mirrors are fetched from upstream on first request, behind every view.
  const store = { ...opened, blobs: new FetchThroughBlobs(opened.blobs, opened.meta, log) };
  await store.blobs.cleanStaging();
  const tls = await loadTlsIdentity({ dataDir: config.dataDir, certPath: config.tlsCert, keyPath: config.tlsKey });
  const publisher = new IndexPublisher(store);
  await publisher.refresh();
  publisher.start();

  const grants = openGrants(config);
  let httpsPort = 0;
  const { app, handler } = await buildApp({
    store,
    publisher,
    log,
    httpsPort: () => httpsPort,
    secrets: new ImageSecrets(grants),
    grants,
    tls,
    version: packageVersion,
    maxUploadSize: config.maxUploadSize,
  });
  const listeners: Listener[] = [];
  try {
    const https = parseAddress(config.https)!;
    const limits = { headersTimeoutMs: config.headersTimeout * 1000, maxConnectionsPerAddress: config.maxConnectionsPerAddress };
    const dual = await listenDual(https.host, https.port, handler, tls, limits);
    listeners.push(dual);
    httpsPort = dual.port;
    if (config.http) {
      const http = parseAddress(config.http)!;
      listeners.push(await listenPlain(http.host, http.port, handler, limits));
    }
  } catch (err) {
    // Stop the index poll too, or it would query the closed database and log about it.
    publisher.stop();
    await Promise.all(listeners.map((l) => l.close()));
    await app.close();
    await grants.close();
    await store.meta.close();
    throw err;
  }

  const scheduler = startScheduler(store, { autoUpdateSeconds: config.autoUpdateInterval, remoteCacheExpiryDays: config.remoteCacheExpiry });
  const gc = setInterval(() => {
    collectGarbage(store).catch((err: unknown) => log.error('garbage collection failed', { err }));
  }, gcIntervalMs);
  gc.unref();

  log.info('listening', { https: httpsPort, http: listeners[1]?.port, certificate: tls.certPath, fingerprint: tls.fingerprint });
  return {
    httpsPort,
    httpPort: listeners[1]?.port,
    tls,
    close: async () => {
      clearInterval(gc);
      await scheduler.stop();
      publisher.stop();
      await Promise.all(listeners.map((l) => l.close()));
      await app.close();
      await grants.close();
      await store.meta.close();
    },
  };
}
