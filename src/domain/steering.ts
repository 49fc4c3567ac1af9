/**
 * Where an artifact download is sent: the rules of the origin's GeoIP steering, as a function of
 * the sites, their last check and the client's location. Country first, then continent, else the
 * origin serves the file itself. Among equals, a draw by weight; among the sites of the weight
 * drawn, one known to hold the file is preferred. Plain http is preferred, as
 * images.linuxcontainers.org redirects: clients check every file against the sha256 of the index
 * they read from the origin over HTTPS.
 */
/** A mirror the origin steers downloads to (`wharf site add`), and what its last check found. */
export interface SiteRecord {
  name: string;
  /** Base URL under which the site serves the origin's paths. */
  url: string;
  /** ISO 3166 country codes (uppercase) it serves. */
  countries: string[];
  /** Continent codes (AF, AN, AS, EU, NA, OC, SA) it serves when no site covers the country. */
  continents: string[];
  /** Share of the requests among equally good sites. */
  weight: number;
  health: SiteHealth | null;
}

export interface SiteHealth {
  checkedAt: string;
  /**
   * Whether, over each protocol at the last check, it served the smallest published file intact
   * and a sampled range of a larger one as the origin has it, without redirecting.
   */
  http: boolean;
  https: boolean;
  error: string | null;
  /**
   * What a wharf mirror says it holds, kept to published files large enough to be steered (and
   * to so many: steering/checker.ts); null when the site does not say.
   */
  held: string[] | null;
}

export interface ClientLocation {
  country?: string | undefined;
  continent?: string | undefined;
}

export interface SteeringChoice {
  site: SiteRecord;
  /** The scheme to send the client with: http when the site passes over http. */
  scheme: 'http' | 'https';
}

export interface ChoiceOptions {
  /** Whether the site holds the file; by default its last check's list, which callers may index. */
  holds?: (site: SiteRecord, sha256: string) => boolean;
  random?: () => number;
}

const listedAsHeld = (site: SiteRecord, sha256: string) => site.health?.held?.includes(sha256) === true;

const healthy = (s: SiteRecord) => s.health !== null && (s.health.http || s.health.https);

export function chooseSite(sites: SiteRecord[], where: ClientLocation, sha256: string, options: ChoiceOptions = {}): SteeringChoice | undefined {
  const { holds = listedAsHeld, random = Math.random } = options;
  const usable = sites.filter((s) => healthy(s) && s.weight > 0);
  const byCountry = where.country ? usable.filter((s) => s.countries.includes(where.country!)) : [];
  const candidates = byCountry.length ? byCountry : where.continent ? usable.filter((s) => s.continents.includes(where.continent!)) : [];
  if (candidates.length === 0) return undefined;
  const total = candidates.reduce((sum, s) => sum + s.weight, 0);
  let draw = random() * total;
  const drawn = candidates.find((s) => (draw -= s.weight) < 0) ?? candidates[candidates.length - 1]!;
  // What a site says it holds only chooses among the sites of the weight drawn: a claim (true or
  // not) moves no traffic from a site of another weight, so each weight's share is kept.
  const holding = candidates.filter((s) => s.weight === drawn.weight && holds(s, sha256));
  const site = holding.length === 0 || holding.includes(drawn) ? drawn : holding[Math.floor(random() * holding.length)]!;
  return { site, scheme: site.health!.http ? 'http' : 'https' };
}

/** The site's URL over `scheme` (an explicit port stays; a default one becomes the scheme's). */
export function siteBase(url: string, scheme: 'http' | 'https'): URL {
  const base = new URL(url);
  const explicitPort = base.port;
  base.protocol = `${scheme}:`;
  base.port = explicitPort;
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return base;
}

/** ISO 3166 alpha-2 (uppercase) and continent codes as GeoIP databases give them. */
export const continentCodes = ['AF', 'AN', 'AS', 'EU', 'NA', 'OC', 'SA'] as const;
export const isCountryCode = (code: string) => /^[A-Z]{2}$/.test(code);
