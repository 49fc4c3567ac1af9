/**
 * The origin's steering, in each serving process: the sites as the database has them (read
 * again within 2 s of a change, so a check or a `site add` reaches every process), the GeoIP
 * database, and which proxies may say who the client is. HTTP asks `redirect`; nothing here knows
 * HTTP beyond the two headers that carry the client's identity.
 */
import { AddressList, clientAddress } from '../addresses.ts';
import { chooseSite, siteBase, type SiteRecord } from '../domain/steering.ts';
import type { ChangeFeed, SiteStore } from '../meta/store.ts';
import type { Logger } from '../log.ts';
import type { GeoIp } from './geoip.ts';

/** Files smaller than this are always served by the origin: a redirect would cost more than it saves. */
export const steerMinBytes = 1024 * 1024;
const reloadEveryMs = 2_000;

export interface SteeredRequest {
  /** The address the connection comes from. */
  peer: string | undefined;
  /** X-Forwarded-For, believed only from a trusted proxy. */
  forwardedFor: string | undefined;
  /** X-LXC-No-GeoIP (mirrors filling their cache send "on"). */
  noGeoIp: string | undefined;
}

export class Steering {
  private sites: SiteRecord[] = [];
  /** Per site (as last read), the files it holds and its base URL per scheme, built once per read. */
  private held = new Map<SiteRecord, Set<string>>();
  private bases = new Map<SiteRecord, { http: string; https: string }>();
  /** Downloads sent to each site by this process (for /metrics). */
  readonly redirects = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  /** The store's change counter when the sites were last read. */
  private readVersion: number | undefined;
  private readonly meta: SiteStore & ChangeFeed;
  private readonly geoip: GeoIp;
  private readonly trusted: AddressList;
  private readonly log: Logger;

  constructor(options: { meta: SiteStore & ChangeFeed; geoip: GeoIp; trustedProxies: string[]; log: Logger }) {
    this.meta = options.meta;
    this.geoip = options.geoip;
    this.log = options.log;
    this.trusted = new AddressList(options.trustedProxies);
  }

  async start(): Promise<void> {
    await this.reload();
    this.timer = setInterval(() => void this.reload(), reloadEveryMs).unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * Reads the sites again if the store changed since: the change counter is one cheap query,
   * while reading and indexing the sites (their health, held lists included) costs in proportion
   * to what they hold, every 2 s in every process.
   */
  private async reload() {
    try {
      // Read before the sites: a change landing in between is read again next time.
      const version = await this.meta.changeVersion();
      if (version === this.readVersion) return;
      const sites = await this.meta.listSites();
      this.held = new Map(sites.map((s) => [s, new Set(s.health?.held ?? [])]));
      this.bases = new Map(sites.map((s) => [s, { http: siteBase(s.url, 'http').href, https: siteBase(s.url, 'https').href }]));
      this.sites = sites;
      this.readVersion = version;
    } catch (err) {
      this.log.warn('cannot read the sites', { err });
    }
  }

  /**
   * Where to send this download of `file` (at `path`, relative to the server's root), if a healthy
   * site serves the client's region: the absolute URL.
   */
  redirect(request: SteeredRequest, file: { sha256: string; size: number }, path: string): string | undefined {
    if (file.size < steerMinBytes || request.noGeoIp?.trim().toLowerCase() === 'on' || this.sites.length === 0) return undefined;
    const client = this.clientAddress(request);
    if (!client) return undefined;
    const choice = chooseSite(this.sites, this.geoip.locate(client), file.sha256, { holds: (site, sha) => this.held.get(site)?.has(sha) === true });
    if (!choice) return undefined;
    this.redirects.set(choice.site.name, (this.redirects.get(choice.site.name) ?? 0) + 1);
    // Artifact paths are ASCII with no dot segments (artifactSha), so joining is concatenation.
    return this.bases.get(choice.site)![choice.scheme] + path.replace(/^\/+/, '');
  }

  /** Each site's health as last read (checked: false before its first check). */
  siteHealth(): { name: string; http: boolean; https: boolean; checked: boolean }[] {
    return this.sites.map((s) => ({ name: s.name, http: s.health?.http === true, https: s.health?.https === true, checked: s.health !== null }));
  }

  /** Who the request comes from, behind trusted proxies (addresses.ts `clientAddress`). */
  clientAddress(request: SteeredRequest): string | undefined {
    return clientAddress(request.peer, request.forwardedFor, this.trusted);
  }
}
