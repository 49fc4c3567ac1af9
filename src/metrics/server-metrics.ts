/**
 * What /metrics reports, in the Prometheus format (prom-client). Hot paths only bump plain
 * numbers (a request, a cache hit, a redirect); they become Prometheus counters when scraped, so
 * counting costs a download or a redirect decision next to nothing. Everything else is read from
 * its owner at scrape time: the publisher's last rendering, the cache, the sites, the listeners.
 */
import type { BlobTiming } from '../blob/store.ts';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { PublisherSummary } from '../core/publish.ts';
import type { CacheCounters } from '../cache/edge-cache.ts';
import { downloadVias, type DownloadVia } from '../domain/usage.ts';

/** Request counts by route and status, and bytes by route, as the access log sees them. */
export class RequestCounts {
  readonly requests = new Map<string, Map<number, number>>();
  readonly bytes = new Map<string, number>();
  private readonly routeOf: (url: string) => string;

  /** `routeOf` names the route of a request URL (default: the origin's routes). */
  constructor(routeOf: (url: string) => string = originRouteOf) {
    this.routeOf = routeOf;
  }

  observe(url: string, status: number, bytes: number): void {
    const route = this.routeOf(url);
    let byStatus = this.requests.get(route);
    if (!byStatus) this.requests.set(route, (byStatus = new Map()));
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    this.bytes.set(route, (this.bytes.get(route) ?? 0) + bytes);
  }
}

const isOperations = (url: string) => url.startsWith('/healthz') || url.startsWith('/readyz') || url.startsWith('/metrics');

/** The route label of a request to an origin: a few fixed values, so that no client can grow the series. */
export function originRouteOf(url: string): string {
  if (url.startsWith('/files/')) return 'artifact';
  if (url.startsWith('/streams/')) return 'index';
  if (url === '/1.0' || url.startsWith('/1.0/') || url.startsWith('/1.0?')) return 'api';
  if (isOperations(url)) return 'operations';
  if (url === '/' || url.startsWith('/?') || url.startsWith('/catalogue')) return 'catalogue';
  return 'other';
}

/** On a mirror every path but the operator's is one of the origin's files (or a redirect to its index). */
export function mirrorRouteOf(url: string): string {
  if (isOperations(url)) return 'operations';
  if (url.startsWith('/streams/')) return 'index';
  if (url.startsWith('/.wharf/')) return 'wharf';
  return 'artifact';
}

/** Where the scrape reads what it reports; a server passes what it has. */
export interface MetricSources {
  requests: RequestCounts;
  /** TLS handshakes completed by this process's listeners. */
  handshakes: () => number;
  publisher?: { summary: PublisherSummary };
  cache?: { counters: CacheCounters; usedBytes: number; held(): string[] };
  downloads?: { totals: Record<DownloadVia, number> };
  steering?: { redirects: Map<string, number>; siteHealth(): { name: string; http: boolean; https: boolean; checked: boolean }[] };
  /** Time spent in the blob driver, per operation (blob/store.ts `Blobs.timings`). */
  blobs?: { timings: Map<string, BlobTiming> };
  /** The OCI registry: manifest pulls and pushes (http/oci/routes.ts) and its pull-through cache (mirror/oci-cache.ts). */
  registry?: { counts: RegistryCounts; cache: { counters: { hits: number; misses: number; stale: number; upstreamFetches: number } } };
  /** The webhook sender, in the process that runs the background jobs (pipeline/webhooks.ts). */
  webhooks?: { counters: Map<string, Map<string, number>>; backlog(): Map<string, number> };
}

/**
 * A counter whose value lives elsewhere (a plain number bumped on the hot path): each scrape adds
 * what was counted since the previous one, per label set.
 */
function pulledCounter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[], read: () => Iterable<[Record<L, string>, number]>) {
  const seen = new Map<string, number>();
  return new Counter<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      for (const [labels, value] of read()) {
        const key = JSON.stringify(labels);
        const delta = value - (seen.get(key) ?? 0);
        if (delta > 0) this.inc(labels as never, delta);
        else if (!seen.has(key)) this.inc(labels as never, 0);
        seen.set(key, value);
      }
    },
  });
}

function gauge<L extends string>(registry: Registry, name: string, help: string, labelNames: L[], read: () => Iterable<[Record<L, string>, number]>) {
  return new Gauge<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    // The same in every serving process (it is the store's, not the process's): one of them counts.
    aggregator: 'first',
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.set(labels as never, value);
    },
  });
}

const one = (value: number): [Record<never, string>, number][] => [[{}, value]];

/** Manifests the registry served and took, counted by http/oci/routes.ts. */
export class RegistryCounts {
  pulls = 0;
  pushes = 0;
}

export function serverMetrics(sources: MetricSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'wharf_' });
  const { requests } = sources;
  pulledCounter(registry, 'wharf_http_requests_total', 'HTTP requests answered, by route and status', ['route', 'status'], function* () {
    for (const [route, byStatus] of requests.requests) for (const [status, count] of byStatus) yield [{ route, status: String(status) }, count];
  });
  pulledCounter(registry, 'wharf_http_response_bytes_total', 'Bytes written in responses (headers included), by route', ['route'], function* () {
    for (const [route, bytes] of requests.bytes) yield [{ route }, bytes];
  });
  pulledCounter(registry, 'wharf_tls_handshakes_total', 'TLS handshakes completed', [], () => one(sources.handshakes()));

  const publisher = sources.publisher;
  if (publisher) {
    pulledCounter(registry, 'wharf_index_renders_total', 'Renderings of the published index (one per change of the store)', [], () => one(publisher.summary.renders));
    pulledCounter(registry, 'wharf_index_render_seconds_total', 'Time spent rendering the index', [], () => one(publisher.summary.renderSeconds));
    gauge(registry, 'wharf_images', 'Images in the store, by visibility', ['visibility'], () => [
      [{ visibility: 'public' }, publisher.summary.images.public],
      [{ visibility: 'private' }, publisher.summary.images.private],
    ]);
    gauge(registry, 'wharf_store_bytes', 'Bytes of the distinct files of every image in the store', [], () => one(publisher.summary.storedBytes));
    gauge(registry, 'wharf_pipeline_images', 'Images in the publishing pipeline, by stage (uploaded, testing, passed, failed, promoted, rejected)', ['stage'], () =>
      Object.entries(publisher.summary.stages).map(([stage, count]) => [{ stage }, count]),
    );
  }

  const oci = sources.registry;
  if (oci) {
    pulledCounter(registry, 'wharf_registry_manifests_total', 'Manifests the OCI registry served (pull) and took (push)', ['action'], () => [
      [{ action: 'pull' }, oci.counts.pulls],
      [{ action: 'push' }, oci.counts.pushes],
    ]);
    const cache = oci.cache.counters;
    pulledCounter(registry, 'wharf_registry_cache_total', 'Pull-through cache answers: hit (kept copy), miss (fetched upstream), stale (kept copy, upstream failing)', ['outcome'], () => [
      [{ outcome: 'hit' }, cache.hits],
      [{ outcome: 'miss' }, cache.misses],
      [{ outcome: 'stale' }, cache.stale],
    ]);
    pulledCounter(registry, 'wharf_registry_upstream_fetches_total', 'Manifests and blobs the pull-through cache fetched from upstream registries', [], () => one(cache.upstreamFetches));
  }

  const webhooks = sources.webhooks;
  if (webhooks) {
    pulledCounter(registry, 'wharf_webhook_deliveries_total', 'Attempts to deliver an event to a webhook, by webhook and outcome (delivered, failed, gave up)', ['webhook', 'outcome'], function* () {
      for (const [webhook, byOutcome] of webhooks.counters) for (const [outcome, count] of byOutcome) yield [{ webhook, outcome }, count];
    });
    // Counted by the one process that sends: summed over the processes, the others add nothing.
    new Gauge<'webhook'>({
      name: 'wharf_webhook_backlog',
      help: 'Events not yet delivered to a webhook (nor given up on), as its sender last saw',
      labelNames: ['webhook'],
      registers: [registry],
      aggregator: 'sum',
      collect() {
        this.reset();
        for (const [webhook, n] of webhooks.backlog()) this.set({ webhook }, n);
      },
    });
  }

  const downloads = sources.downloads;
  if (downloads) {
    pulledCounter(registry, 'wharf_image_downloads_total', 'Image downloads counted for usage statistics, by way (file, redirect, export)', ['via'], () =>
      downloadVias.map((via) => [{ via }, downloads.totals[via]]),
    );
  }

  const blobs = sources.blobs;
  if (blobs) {
    pulledCounter(registry, 'wharf_blob_operations_total', 'Calls into the blob driver, by operation (a read counts its opening)', ['op'], () =>
      [...blobs.timings].map(([op, t]) => [{ op }, t.count]),
    );
    pulledCounter(registry, 'wharf_blob_operation_seconds_total', 'Time spent in the blob driver, by operation', ['op'], () => [...blobs.timings].map(([op, t]) => [{ op }, t.seconds]));
  }

  const cache = sources.cache;
  if (cache) {
    const c = cache.counters;
    pulledCounter(registry, 'wharf_cache_hits_total', 'Mirror downloads answered from the cache', [], () => one(c.hits));
    pulledCounter(registry, 'wharf_cache_misses_total', 'Mirror downloads that started or joined a fill from the origin', [], () => one(c.misses));
    pulledCounter(registry, 'wharf_cache_fill_bytes_total', 'Bytes fetched from the origin into the cache, verified', [], () => one(c.filledBytes));
    pulledCounter(registry, 'wharf_cache_evictions_total', 'Files evicted from the cache', [], () => one(c.evictions));
    pulledCounter(registry, 'wharf_upstream_errors_total', 'Fills that failed: the origin unreachable, or its bytes not what its index lists', [], () => one(c.upstreamFailures));
    pulledCounter(registry, 'wharf_cache_refused_fills_total', 'Fills refused: at the limit in all or for one client, no room, or larger than the cache', [], () => one(c.refusedFills));
    pulledCounter(registry, 'wharf_cache_damaged_total', 'Cached files found damaged when hashed again, and removed', [], () => one(c.damaged));
    gauge(registry, 'wharf_cache_bytes', 'Bytes held in the cache', [], () => one(cache.usedBytes));
    gauge(registry, 'wharf_cache_files', 'Files held in the cache', [], () => one(cache.held().length));
  }

  const steering = sources.steering;
  if (steering) {
    pulledCounter(registry, 'wharf_redirects_total', 'Downloads sent to a site by GeoIP steering, by site', ['site'], function* () {
      for (const [site, count] of steering.redirects) yield [{ site }, count];
    });
    gauge(registry, 'wharf_site_up', 'Whether the site passed its last check, by site and scheme (absent before its first check)', ['site', 'scheme'], function* () {
      for (const site of steering.siteHealth()) {
        if (!site.checked) continue;
        yield [{ site: site.name, scheme: 'http' }, site.http ? 1 : 0];
        yield [{ site: site.name, scheme: 'https' }, site.https ? 1 : 0];
      }
    });
  }
  return registry;
}
