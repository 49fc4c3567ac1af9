/**
 * Settings, from (lowest to highest) defaults, DATA_DIR/config.yaml, WHARF_* environment
 * variables and command-line flags. Checked once at start so a typo is an error, not a surprise.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError, ErrorCodes, isAppError } from './errors.ts';
import { parseDuration } from './domain/duration.ts';
import type { Level } from './log.ts';
import bytes from 'bytes';
import { isIP } from 'node:net';
import { checkReleaseAliasSetting, type ReleaseAliasSetting } from './domain/release-names.ts';
import { viewUrlRoot } from './domain/view.ts';
import { checkTestHooks, type TestHook } from './domain/test-hooks.ts';
import { checkWebhooks, type Webhook } from './domain/webhooks.ts';

export interface Config {
  dataDir: string;
  /**
   * postgres://... : the catalogue, grants and download counts in PostgreSQL, shared by replicas on
   * several hosts; none: SQLite files in the data directory (the embedded default).
   */
  database: string | undefined;
  /** Where the blobs are: s3://BUCKET[/PREFIX], a directory (shared by the replicas), or DATA/blobs by default. */
  blobStore: string | undefined;
  /** S3: address buckets in the path (MinIO, Swift, Garage...) rather than as host names (AWS). */
  s3PathStyle: boolean;
  /**
   * S3: artifact downloads answered with a redirect to a short-lived presigned URL, so the bytes
   * flow from the object store, not through wharf (the clients follow redirects).
   */
  blobRedirect: boolean;
  /** S3: where clients reach the object store, when not where wharf does (AWS_ENDPOINT_URL_S3). */
  blobRedirectEndpoint: string | undefined;
  /** The OpenPGP key file that signs the index (replicas share it); default DATA/signing-key.asc if there. */
  signingKey: string | undefined;
  /** HOST:PORT of the HTTPS listener, which also answers plain HTTP for artifacts. */
  https: string;
  /** Optional extra plain-HTTP listener (artifacts only). */
  http: string | undefined;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /** Seconds a deleted image's files stay downloadable. */
  gracePeriod: number;
  /** Seconds between auto-update checks of images copied with --auto-update; 0 = off. */
  autoUpdateInterval: number;
  /** Days a lazily mirrored file is kept without a download before its local copy is dropped. */
  remoteCacheExpiry: number;
  /** Largest image upload accepted over the LXD API, in bytes. */
  maxUploadSize: number;
  /** Seconds a connection may take to send a request's headers (also: idle keep-alive, TLS handshake). */
  headersTimeout: number;
  /** Seconds a download may go without the client taking a byte before it is cut (nginx's send_timeout). */
  sendTimeout: number;
  /** Seconds a request body may go without a byte arriving before it is cut (nginx's client_body_timeout). */
  bodyTimeout: number;
  /** Connections one client address may hold open at once; 0 = no limit. */
  maxConnectionsPerAddress: number;
  /** Connections a listener of one serving process holds open at once, from all addresses; 0 = no limit. */
  maxConnections: number;
  /** Processes that serve HTTP, sharing the port; 0 = one per core. */
  serveProcesses: number;
  logLevel: Level;
  /** Mirror mode: the origin this server is a caching mirror of (https://...). */
  mirrorOf: string | undefined;
  /** PEM file of the origin's certificate, pinned instead of the system CA store. */
  originCertificate: string | undefined;
  /** Mirror mode: armored OpenPGP public key file; the origin's index must be signed by it. */
  originKey: string | undefined;
  /** Mirror mode: the most the cache holds, in bytes (least recently used files go first). */
  cacheMaxSize: number;
  /** Mirror mode: seconds a cached file is kept without being downloaded. */
  cacheInactive: number;
  /** Mirror mode: seconds between two hashings of each cached file's bytes (damaged ones are removed); 0 = never. */
  cacheRecheck: number;
  /** Mirror mode: seconds between reads of the origin's index. */
  originRefresh: number;
  /** Mirror mode: seconds each index document of the origin has to arrive whole. */
  originTimeout: number;
  /** Mirror mode: downloads from the origin (cache fills) in flight at once; 0 = no limit. */
  cacheMaxFills: number;
  /** Mirror mode: fills one client address may have started that are still in flight; 0 = no limit. */
  cacheMaxFillsPerAddress: number;
  /** An mmdb GeoIP database: with it and sites (`wharf site add`), downloads are steered. */
  geoipDb: string | undefined;
  /** Proxies whose X-Forwarded-For is believed (CIDRs). */
  trustedProxies: string[];
  /** Seconds between health checks of the sites. */
  siteCheckInterval: number;
  /**
   * Seconds an automatic gate waits, after a build's last upload, for the architectures its
   * product's channel does not list yet (those it lists, it always waits for).
   */
  gateWait: number;
  /** Seconds a tag the registry's pull-through cache holds is served before it is checked upstream again (a HEAD). */
  ociCacheTtl: number;
  /** Registry repositories (globs) only users whose globs match may pull; every other one is public. */
  registryPrivate: string[];
  /** Seconds an upload (a registry session, a push) may sit idle before collection removes it. */
  uploadTtl: number;
  /** Networks (CIDRs) besides loopback that may read /metrics. */
  metricsAllow: string[];
  /** HOST:PORT of a plain-HTTP listener of its own for /metrics (and /healthz, /readyz); the serving ports then answer no /metrics. */
  metricsListen: string | undefined;
  /** Seconds downloads in progress may take to finish after SIGTERM before they are cut. */
  shutdownTimeout: number;
  /** Whether image downloads are counted for the usage statistics. */
  countDownloads: boolean;
  /** config.yaml only: OS -> release -> its other names, over the built-in table. */
  releaseAliases: ReleaseAliasSetting;
  /** config.yaml only: the commands an image is tested with (`wharf image test`). */
  testHooks: TestHook[];
  /** `webhooks:`: receivers of the pipeline's events (domain/webhooks.ts). */
  webhooks: Webhook[];
  /** `registry_credentials:`: per OCI remote, what wharf logs in to it with (never a client's). */
  registryCredentials: Record<string, { username: string; password: string }>;
}

type Settings = Omit<Config, 'dataDir' | 'releaseAliases' | 'testHooks' | 'webhooks' | 'registryCredentials'>;

const defaults: Settings = {
  database: undefined,
  blobStore: undefined,
  s3PathStyle: false,
  blobRedirect: false,
  blobRedirectEndpoint: undefined,
  signingKey: undefined,
  https: '[::]:8443',
  http: undefined,
  tlsCert: undefined,
  tlsKey: undefined,
  // Clients keep an index for an hour and refresh it late: what one named stays downloadable twice that.
  gracePeriod: 7200,
  autoUpdateInterval: 6 * 3600,
  remoteCacheExpiry: 10,
  maxUploadSize: 64 * 1024 ** 3,
  headersTimeout: 30,
  sendTimeout: 60,
  bodyTimeout: 60,
  maxConnectionsPerAddress: 64,
  maxConnections: 10_000,
  serveProcesses: 0,
  logLevel: 'info',
  mirrorOf: undefined,
  originCertificate: undefined,
  originKey: undefined,
  cacheMaxSize: 50 * 1024 ** 3,
  cacheInactive: 3 * 86400,
  cacheRecheck: 86400,
  originRefresh: 60,
  originTimeout: 120,
  cacheMaxFills: 32,
  cacheMaxFillsPerAddress: 4,
  geoipDb: undefined,
  trustedProxies: [],
  siteCheckInterval: 60,
  gateWait: 600,
  ociCacheTtl: 300,
  registryPrivate: [],
  uploadTtl: 600,
  metricsAllow: [],
  metricsListen: undefined,
  shutdownTimeout: 30,
  countDownloads: true,
};

type Kind = 'address' | 'path' | 'url' | 'endpoint' | 'database' | 'cidrs' | 'globs' | 'seconds' | 'days' | 'bytes' | 'count' | 'level' | 'switch';

const keys: Record<keyof Settings, { yaml: string; env: string; kind: Kind }> = {
  database: { yaml: 'database', env: 'WHARF_DATABASE', kind: 'database' },
  blobStore: { yaml: 'blob_store', env: 'WHARF_BLOB_STORE', kind: 'path' },
  s3PathStyle: { yaml: 's3_path_style', env: 'WHARF_S3_PATH_STYLE', kind: 'switch' },
  blobRedirect: { yaml: 'blob_redirect', env: 'WHARF_BLOB_REDIRECT', kind: 'switch' },
  blobRedirectEndpoint: { yaml: 'blob_redirect_endpoint', env: 'WHARF_BLOB_REDIRECT_ENDPOINT', kind: 'endpoint' },
  signingKey: { yaml: 'signing_key', env: 'WHARF_SIGNING_KEY', kind: 'path' },
  https: { yaml: 'https', env: 'WHARF_HTTPS', kind: 'address' },
  http: { yaml: 'http', env: 'WHARF_HTTP', kind: 'address' },
  tlsCert: { yaml: 'tls_cert', env: 'WHARF_TLS_CERT', kind: 'path' },
  tlsKey: { yaml: 'tls_key', env: 'WHARF_TLS_KEY', kind: 'path' },
  gracePeriod: { yaml: 'grace_period', env: 'WHARF_GRACE_PERIOD', kind: 'seconds' },
  maxUploadSize: { yaml: 'max_upload_size', env: 'WHARF_MAX_UPLOAD_SIZE', kind: 'bytes' },
  autoUpdateInterval: { yaml: 'auto_update_interval', env: 'WHARF_AUTO_UPDATE_INTERVAL', kind: 'seconds' },
  remoteCacheExpiry: { yaml: 'remote_cache_expiry', env: 'WHARF_REMOTE_CACHE_EXPIRY', kind: 'days' },
  headersTimeout: { yaml: 'headers_timeout', env: 'WHARF_HEADERS_TIMEOUT', kind: 'seconds' },
  sendTimeout: { yaml: 'send_timeout', env: 'WHARF_SEND_TIMEOUT', kind: 'seconds' },
  bodyTimeout: { yaml: 'body_timeout', env: 'WHARF_BODY_TIMEOUT', kind: 'seconds' },
  maxConnectionsPerAddress: { yaml: 'max_connections_per_address', env: 'WHARF_MAX_CONNECTIONS_PER_ADDRESS', kind: 'count' },
  maxConnections: { yaml: 'max_connections', env: 'WHARF_MAX_CONNECTIONS', kind: 'count' },
  serveProcesses: { yaml: 'serve_processes', env: 'WHARF_SERVE_PROCESSES', kind: 'count' },
  logLevel: { yaml: 'log_level', env: 'WHARF_LOG_LEVEL', kind: 'level' },
  mirrorOf: { yaml: 'mirror_of', env: 'WHARF_MIRROR_OF', kind: 'url' },
  originCertificate: { yaml: 'origin_certificate', env: 'WHARF_ORIGIN_CERTIFICATE', kind: 'path' },
  originKey: { yaml: 'origin_key', env: 'WHARF_ORIGIN_KEY', kind: 'path' },
  cacheMaxSize: { yaml: 'cache_max_size', env: 'WHARF_CACHE_MAX_SIZE', kind: 'bytes' },
  cacheInactive: { yaml: 'cache_inactive', env: 'WHARF_CACHE_INACTIVE', kind: 'seconds' },
  cacheRecheck: { yaml: 'cache_recheck', env: 'WHARF_CACHE_RECHECK', kind: 'seconds' },
  originRefresh: { yaml: 'origin_refresh', env: 'WHARF_ORIGIN_REFRESH', kind: 'seconds' },
  originTimeout: { yaml: 'origin_timeout', env: 'WHARF_ORIGIN_TIMEOUT', kind: 'seconds' },
  cacheMaxFills: { yaml: 'cache_max_fills', env: 'WHARF_CACHE_MAX_FILLS', kind: 'count' },
  cacheMaxFillsPerAddress: { yaml: 'cache_max_fills_per_address', env: 'WHARF_CACHE_MAX_FILLS_PER_ADDRESS', kind: 'count' },
  geoipDb: { yaml: 'geoip_db', env: 'WHARF_GEOIP_DB', kind: 'path' },
  trustedProxies: { yaml: 'trusted_proxies', env: 'WHARF_TRUSTED_PROXIES', kind: 'cidrs' },
  siteCheckInterval: { yaml: 'site_check_interval', env: 'WHARF_SITE_CHECK_INTERVAL', kind: 'seconds' },
  gateWait: { yaml: 'gate_wait', env: 'WHARF_GATE_WAIT', kind: 'seconds' },
  ociCacheTtl: { yaml: 'oci_cache_ttl', env: 'WHARF_OCI_CACHE_TTL', kind: 'seconds' },
  registryPrivate: { yaml: 'registry_private', env: 'WHARF_REGISTRY_PRIVATE', kind: 'globs' },
  uploadTtl: { yaml: 'upload_ttl', env: 'WHARF_UPLOAD_TTL', kind: 'seconds' },
  metricsAllow: { yaml: 'metrics_allow', env: 'WHARF_METRICS_ALLOW', kind: 'cidrs' },
  metricsListen: { yaml: 'metrics_listen', env: 'WHARF_METRICS_LISTEN', kind: 'address' },
  shutdownTimeout: { yaml: 'shutdown_timeout', env: 'WHARF_SHUTDOWN_TIMEOUT', kind: 'seconds' },
  countDownloads: { yaml: 'count_downloads', env: 'WHARF_COUNT_DOWNLOADS', kind: 'switch' },
};

export const configFileName = 'config.yaml';

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.WHARF_DATA_DIR || './wharf-data';
}

export async function loadConfig(
  dataDir: string,
  flags: Partial<Record<keyof Settings, string | string[] | number | undefined>> = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<Config> {
  const file = await readConfigFile(join(dataDir, configFileName));
  const settings: Record<string, unknown> = { ...defaults };
  for (const [name, spec] of Object.entries(keys) as [keyof Settings, (typeof keys)[keyof Settings]][]) {
    const sources: [string, unknown][] = [
      [`${configFileName}: ${spec.yaml}`, file[spec.yaml]],
      [`environment variable ${spec.env}`, env[spec.env]],
      [`option --${name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`, flags[name]],
    ];
    for (const [origin, value] of sources) {
      if (value === undefined || value === null || value === '') continue;
      settings[name] = checkValue(spec.kind, value, origin);
    }
  }
  const releaseAliases = file.release_aliases === undefined || file.release_aliases === null ? {} : checkReleaseAliasSetting(file.release_aliases, `${configFileName}: release_aliases`);
  const testHooks = file.test_hooks === undefined || file.test_hooks === null ? [] : checkTestHooks(file.test_hooks, `${configFileName}: test_hooks`);
  const webhooks = file.webhooks === undefined || file.webhooks === null ? [] : checkWebhooks(file.webhooks, `${configFileName}: webhooks`);
  const registryCredentials = file.registry_credentials === undefined || file.registry_credentials === null ? {} : checkRegistryCredentials(file.registry_credentials, `${configFileName}: registry_credentials`);
  const config = { dataDir, ...(settings as Settings), releaseAliases, testHooks, webhooks, registryCredentials };
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw new AppError(ErrorCodes.config, 'tls_cert and tls_key must be given together');
  }
  if ((config.blobRedirect || config.blobRedirectEndpoint) && !config.blobStore?.startsWith('s3://')) {
    throw new AppError(ErrorCodes.config, 'blob_redirect needs an s3:// blob_store: only an object store hands out URLs clients can download from');
  }
  return config;
}

/** `registry_credentials: { REMOTE: { username, password } }`: strings, for OCI remotes by name. */
function checkRegistryCredentials(value: unknown, origin: string): Record<string, { username: string; password: string }> {
  const bad = (what: string) => new AppError(ErrorCodes.config, `${origin}: ${what}`, { hint: 'e.g. registry_credentials: { hub: { username: me, password: "..." } }' });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('must be a mapping of OCI remote names');
  const credentials: Record<string, { username: string; password: string }> = {};
  for (const [name, entry] of Object.entries(value)) {
    const { username, password, ...rest } = (entry ?? {}) as Record<string, unknown>;
    if (Object.keys(rest).length || typeof username !== 'string' || typeof password !== 'string' || !username) throw bad(`${name} must have a username and a password (strings), nothing else`);
    credentials[name] = { username, password };
  }
  return credentials;
}

async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new AppError(ErrorCodes.config, `cannot read ${path}: ${(err as Error).message}`);
  }
  // Loaded only when there is a file to read: most commands run without one, and the YAML
  // library is a good part of a short command's start-up time.
  const { parse } = await import('yaml');
  let doc: unknown;
  try {
    doc = parse(text) ?? {};
  } catch (err) {
    throw new AppError(ErrorCodes.config, `${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new AppError(ErrorCodes.config, `${path} must be a mapping of settings`);
  const known = new Set([...Object.values(keys).map((k) => k.yaml), 'release_aliases', 'test_hooks', 'webhooks', 'registry_credentials']);
  for (const key of Object.keys(doc as object)) {
    if (!known.has(key)) {
      throw new AppError(ErrorCodes.config, `${path}: unknown setting "${key}"`, { hint: `Known settings: ${[...known].join(', ')}` });
    }
  }
  return doc as Record<string, unknown>;
}

function checkValue(kind: Kind, value: unknown, origin: string): unknown {
  const bad = (what: string) => new AppError(ErrorCodes.config, `${origin}: ${JSON.stringify(value)} is not ${what}`);
  switch (kind) {
    case 'address':
      if (typeof value !== 'string' || !parseAddress(value)) throw bad('an address of the form HOST:PORT');
      return value;
    case 'path':
      if (typeof value !== 'string') throw bad('a file path');
      return value;
    case 'cidrs': {
      // A YAML list, or a comma-separated string (environment, or one flag per proxy joined).
      const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : undefined;
      if (!list) throw bad('a list of CIDRs');
      return list.map((entry) => {
        const cidr = String(entry).trim();
        if (!isCidr(cidr)) throw bad('a list of CIDRs (such as 10.0.0.0/8, 2001:db8::/32 or 192.0.2.7)');
        return cidr;
      });
    }
    case 'globs': {
      const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : undefined;
      if (!list) throw bad('a list of repository globs');
      return list.map((entry) => {
        const glob = String(entry).trim();
        if (!/^[a-z0-9*][a-z0-9._/*-]*$/.test(glob)) throw bad('a list of repository globs (such as secret/* or team/app)');
        return glob;
      });
    }
    case 'url': {
      const url = typeof value === 'string' && URL.canParse(value) ? new URL(value) : undefined;
      if (!url || url.protocol !== 'https:' || url.username || url.password || url.search || url.hash) throw bad('an https:// URL (no credentials, query or fragment)');
      // A regional mirror sends its clients to the origin's index: a view's would hand out its token.
      if (viewUrlRoot(url.pathname) !== undefined) throw new AppError(ErrorCodes.config, `${origin}: give an origin's URL, not a private view's (a mirror would hand its token to every client)`);
      return url.href.replace(/\/+$/, '');
    }
    case 'endpoint': {
      const url = typeof value === 'string' && URL.canParse(value) ? new URL(value) : undefined;
      if (!url || !['https:', 'http:'].includes(url.protocol) || url.username || url.password || url.search || url.hash) throw bad('an http(s):// URL (no credentials, query or fragment)');
      return url.href.replace(/\/+$/, '');
    }
    case 'database': {
      const url = typeof value === 'string' && URL.canParse(value) ? new URL(value) : undefined;
      if (!url || (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')) throw bad('a postgres://USER:PASSWORD@HOST:PORT/DATABASE URL');
      return value;
    }
    case 'seconds': {
      if (typeof value === 'number') {
        if (!Number.isInteger(value) || value < 0) throw bad('a whole number of seconds');
        return value;
      }
      try {
        return parseDuration(String(value));
      } catch (err) {
        throw new AppError(ErrorCodes.config, `${origin}: ${JSON.stringify(value)} is not a duration`, { hint: isAppError(err) ? err.hint : undefined, cause: err });
      }
    }
    case 'count': {
      const n = typeof value === 'number' ? value : Number(value);
      if (!Number.isSafeInteger(n) || n < 0) throw bad('a whole number');
      return n;
    }
    case 'days': {
      const n = typeof value === 'number' ? value : Number(value);
      if (!Number.isInteger(n) || n < 0) throw bad('a whole number of days');
      return n;
    }
    case 'bytes': {
      const n = typeof value === 'number' ? value : parseSize(String(value));
      if (n === undefined || !Number.isSafeInteger(n) || n <= 0) throw bad('a positive number of bytes (such as 1048576, 512MiB or 50GB)');
      return n;
    }
    case 'level':
      if (!['debug', 'info', 'warn', 'error'].includes(String(value))) throw bad('one of debug, info, warn, error');
      return String(value);
    case 'switch': {
      const text = String(value).toLowerCase();
      if (['true', 'yes', 'on', '1'].includes(text)) return true;
      if (['false', 'no', 'off', '0'].includes(text)) return false;
      throw bad('true or false');
    }
  }
}

/** "1048576", "512MiB", "50GB", "1.5 TB" (units of 1024, as nginx's max_size); undefined if not a size. */
function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtp])i?b?)?\s*$/i.exec(text);
  if (!m) return undefined;
  return m[2] ? (bytes.parse(`${m[1]}${m[2]}b`) ?? undefined) : Number(m[1]);
}

/** "ADDRESS/BITS" or a bare address. */
function isCidr(text: string): boolean {
  const [address, bits, extra] = text.split('/');
  const family = isIP(address ?? '');
  if (!family || extra !== undefined) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
}

/** "HOST:PORT", "[v6]:PORT" or ":PORT" (all interfaces). */
export function parseAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(address.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? (m[2] || '::'), port };
}
