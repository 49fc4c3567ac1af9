/**
 * Health checks of the sites, run by the origin's first process: each site is asked, over http
 * and over https separately, for the smallest file the origin publishes (whole, sha256 compared)
 * and for a random range of a larger one (compared with the origin's own bytes), and is healthy
 * for a protocol only when both came back exactly so. A site is asked without following its
 * redirects: a redirect (back to the origin, say) is what clients would meet, so it fails the
 * check. A wharf mirror is also asked which files it holds; the sampled file is then one of
 * those, so a false claim is found out.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { siteBase, type SiteHealth, type SiteRecord } from '../domain/steering.ts';
import type { SiteStore } from '../meta/store.ts';
import type { BlobStore } from '../blob/store.ts';
import type { IndexPublisher } from '../core/publish.ts';
import type { Logger } from '../log.ts';
import { getJson, openUrl } from '../remote/fetch.ts';
import { isSha256 } from '../domain/fingerprint.ts';
import { steerMinBytes } from './steer.ts';
import { originFiles, type OriginFiles, type PublishedFile } from './origin-files.ts';
import { pickSample, type Sample } from './sample.ts';

const checkTimeoutMs = 10_000;
/**
 * The most sha256s kept of what a site says it holds: every serving process keeps them in memory
 * and reads them again after each round, so a site must not decide how many.
 */
export const heldLimit = 20_000;
/** The header mirrors send to the origin, and checks send to sites: never redirect this request. */
export const noGeoIpHeader = { 'x-lxc-no-geoip': 'on' };

export interface CheckOptions {
  /** Picks the sampled file and range. */
  random?: () => number;
}

export async function checkSite(site: SiteRecord, files: OriginFiles, options: CheckOptions = {}): Promise<SiteHealth> {
  const errors: string[] = [];
  const result: SiteHealth = { checkedAt: new Date().toISOString(), http: false, https: false, error: null, held: null };
  const probe = files.smallest();
  // One sample per round, the same over both protocols; picked once the held list is known.
  let sample: Promise<Sample | undefined> | undefined;
  for (const scheme of ['http', 'https'] as const) {
    const base = siteBase(site.url, scheme);
    try {
      if (probe) await fetchIntact(new URL(probe.path, base), probe);
      else await answers(base);
      if (result.held === null) result.held = usefulHeld(await heldFiles(base), files);
      sample ??= pickSample(files, result.held, options.random ?? Math.random);
      const sampled = await sample;
      if (sampled) await rangeIntact(new URL(sampled.file.path, base), sampled);
      result[scheme] = true;
    } catch (err) {
      errors.push(`${scheme}: ${(err as Error).message}`);
    }
  }
  result.error = errors.length ? errors.join('; ') : null;
  return result;
}

/**
 * GET without following redirects: a site that redirects (to the origin, or anywhere) fails,
 * as the check cannot tell where clients would end up, and sending `X-LXC-No-GeoIP` on to the
 * origin would hide a loop.
 */
async function ask(url: URL, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  const res = await openUrl(url, { headers: { ...noGeoIpHeader, ...headers }, signal: AbortSignal.timeout(checkTimeoutMs), followRedirects: false });
  const status = res.statusCode ?? 0;
  const location = res.headers.location;
  if (status >= 300 && status < 400 && location !== undefined) {
    res.resume();
    // Parsed, so what is recorded and shown is a URL, whatever bytes the site sent.
    const target = URL.canParse(location, url.href) ? new URL(location, url).href.slice(0, 200) : 'an invalid location';
    throw new Error(`${url.pathname} redirects to ${target}`);
  }
  return res;
}

async function fetchIntact(url: URL, probe: PublishedFile): Promise<void> {
  const res = await ask(url);
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

/**
 * The sampled range as the site serves it, against the origin's bytes. A 206 must name exactly
 * that range of a file of the origin's size (a truncated copy says another size); a server that
 * ignores Range answers 200 with the whole file, which is read as far as the range's end.
 */
async function rangeIntact(url: URL, { file, range, bytes }: Sample): Promise<void> {
  const res = await ask(url, { range: `bytes=${range.start}-${range.end}` });
  let skip = 0;
  if (res.statusCode === 206) {
    const answered = res.headers['content-range'];
    if (answered !== `bytes ${range.start}-${range.end}/${file.size}`) {
      res.destroy();
      throw new Error(`${url.pathname}: asked for bytes ${range.start}-${range.end} of ${file.size}, answered ${JSON.stringify(String(answered).slice(0, 100))}`);
    }
  } else if (res.statusCode === 200) {
    const length = res.headers['content-length'];
    if (length !== undefined && Number(length) !== file.size) {
      res.destroy();
      throw new Error(`${url.pathname} is ${Number(length)} bytes, the origin's ${file.size}`);
    }
    skip = range.start;
  } else {
    res.resume();
    throw new Error(`HTTP ${res.statusCode} for ${url.pathname} (bytes ${range.start}-${range.end})`);
  }
  const got = await readPart(res, skip, bytes.length);
  if (!got.equals(bytes)) throw new Error(`${url.pathname} differs from the origin's file (bytes ${range.start}-${range.end})`);
}

/** `length` bytes of `res` after the first `skip`, or fewer if it ends first; then lets go of it. */
async function readPart(res: IncomingMessage, skip: number, length: number): Promise<Buffer> {
  const part = Buffer.alloc(length);
  let at = 0;
  let filled = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      const from = Math.max(0, skip - at);
      at += chunk.length;
      if (from >= chunk.length) continue;
      filled += chunk.copy(part, filled, from);
      if (filled === length) break;
    }
  } finally {
    res.destroy();
  }
  return part.subarray(0, filled);
}

/** With no file to probe (an empty origin), answering at all is what can be checked. */
async function answers(base: URL): Promise<void> {
  const res = await openUrl(base, { headers: noGeoIpHeader, signal: AbortSignal.timeout(checkTimeoutMs), followRedirects: false });
  res.resume();
}

/** What a wharf mirror says it holds; null from any other server. */
async function heldFiles(base: URL): Promise<string[] | null> {
  try {
    const answer = await getJson(new URL('.wharf/held', base), { headers: noGeoIpHeader, signal: AbortSignal.timeout(checkTimeoutMs), followRedirects: false });
    const held = (answer.json as { held?: unknown } | undefined)?.held;
    return answer.status === 200 && Array.isArray(held) ? held.filter((h): h is string => typeof h === 'string' && isSha256(h)) : null;
  } catch {
    return null;
  }
}

/**
 * Of what a site says it holds, what steering can use: files the origin publishes now that are
 * large enough to be steered, each once, at most `heldLimit`.
 */
function usefulHeld(claimed: string[] | null, files: OriginFiles): string[] | null {
  if (claimed === null) return null;
  const kept = new Set<string>();
  for (const sha256 of claimed) {
    if (kept.size >= heldLimit) break;
    if ((files.find(sha256)?.size ?? 0) >= steerMinBytes) kept.add(sha256);
  }
  return [...kept];
}

/** Checks every site now and then, recording each round in one write. */
export function startSiteChecks(meta: SiteStore, origin: { publisher: IndexPublisher; blobs: BlobStore }, intervalMs: number, log: Logger): { stop(): Promise<void> } {
  const files = originFiles(origin.publisher, origin.blobs);
  let running: Promise<void> | undefined;
  const round = async () => {
    const sites = await meta.listSites();
    const results = await Promise.all(sites.map(async (site) => ({ name: site.name, health: await checkSite(site, files) })));
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
