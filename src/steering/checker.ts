/**
 * Health checks of the sites, run by the origin's first process: each site is asked, over http
 * and over https separately, for a small file the origin publishes, and is healthy for a protocol
 * only when it answered with exactly those bytes (sha256). A wharf mirror is also asked which
 * files it holds (verified), so the origin can prefer a site that has the file already.
 */
import { createHash } from 'node:crypto';
import { siteBase, type SiteHealth, type SiteRecord } from '../domain/steering.ts';
import type { SiteStore } from '../meta/store.ts';
import type { Logger } from '../log.ts';
import { getJson, openUrl } from '../remote/fetch.ts';
import { isSha256 } from '../domain/fingerprint.ts';

export interface Probe {
  path: string;
  sha256: string;
  size: number;
}

const checkTimeoutMs = 10_000;
/** The header mirrors send to the origin, and checks send to sites: never redirect this request. */
export const noGeoIpHeader = { 'x-lxc-no-geoip': 'on' };

export async function checkSite(site: SiteRecord, probe: Probe | undefined): Promise<SiteHealth> {
  const errors: string[] = [];
  const result: SiteHealth = { checkedAt: new Date().toISOString(), http: false, https: false, error: null, held: null };
  for (const scheme of ['http', 'https'] as const) {
    const base = siteBase(site.url, scheme);
    try {
      if (probe) await fetchIntact(new URL(probe.path, base), probe);
      else await answers(base);
      result[scheme] = true;
    } catch (err) {
      errors.push(`${scheme}: ${(err as Error).message}`);
      continue;
    }
    if (result.held === null) result.held = await heldFiles(base);
  }
  result.error = errors.length ? errors.join('; ') : null;
  return result;
}

async function fetchIntact(url: URL, probe: Probe): Promise<void> {
  const signal = AbortSignal.timeout(checkTimeoutMs);
  const res = await openUrl(url, { headers: noGeoIpHeader, signal });
  if (res.statusCode !== 200) {
    res.resume();
    throw new Error(`HTTP ${res.statusCode} for ${url.pathname}`);
  }
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > probe.size) throw new Error(`${url.pathname} is larger than the origin's`);
    hash.update(chunk);
  }
  if (size !== probe.size || hash.digest('hex') !== probe.sha256) throw new Error(`${url.pathname} differs from the origin's file`);
}

/** With no file to probe (an empty origin), answering at all is what can be checked. */
async function answers(base: URL): Promise<void> {
  const res = await openUrl(base, { headers: noGeoIpHeader, signal: AbortSignal.timeout(checkTimeoutMs) });
  res.resume();
}

/** What a wharf mirror says it holds; null from any other server. */
async function heldFiles(base: URL): Promise<string[] | null> {
  try {
    const answer = await getJson(new URL('.wharf/held', base), { headers: noGeoIpHeader, signal: AbortSignal.timeout(checkTimeoutMs) });
    const held = (answer.json as { held?: unknown } | undefined)?.held;
    return answer.status === 200 && Array.isArray(held) ? held.filter((h): h is string => typeof h === 'string' && isSha256(h)) : null;
  } catch {
    return null;
  }
}

/** Checks every site now and then, recording each round in one write. */
export function startSiteChecks(meta: SiteStore, probe: () => Probe | undefined, intervalMs: number, log: Logger): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const round = async () => {
    const sites = await meta.listSites();
    const results = await Promise.all(sites.map(async (site) => ({ name: site.name, health: await checkSite(site, probe()) })));
    for (const { name, health } of results) {
      const before = sites.find((s) => s.name === name)!.health;
      const up = health.http || health.https;
      if (before === null || (before.http || before.https) !== up) log.info(up ? 'site healthy' : 'site failing', { site: name, error: health.error });
    }
    await meta.recordSiteHealth(results);
  };
  const runOnce = () => (running ??= round().catch((err: unknown) => log.error('site check failed', { err })).finally(() => (running = undefined)));
  const timer = setInterval(() => void runOnce(), intervalMs);
  timer.unref();
  void runOnce();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
