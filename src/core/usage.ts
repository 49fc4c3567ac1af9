/**
 * Counting downloads without slowing them: a count is a map update in memory; the counts go to
 * the usage store in one transaction every few seconds and when the server stops. A failed
 * write keeps them for the next flush. What a killed process had not flushed yet is lost
 * (at most one interval of counts), which is the price of never writing per download.
 */
import type { Logger } from '../log.ts';
import { dailySeries, dayOf, daysBefore, type Counted, type DownloadCount, type DownloadVia } from '../domain/usage.ts';
import { parseDuration } from '../domain/duration.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import type { UsageStore } from '../meta/usage.ts';

export const flushIntervalMs = 10_000;

export class DownloadCounter {
  private readonly store: UsageStore;
  private readonly log: Logger;
  private readonly now: () => Date;
  private pending = new Map<string, DownloadCount>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  /** Downloads counted by this process since it started, by way (for /metrics). */
  readonly totals: Record<DownloadVia, number> = { file: 0, redirect: 0, export: 0 };

  constructor(store: UsageStore, log: Logger, now: () => Date = () => new Date()) {
    this.store = store;
    this.log = log;
    this.now = now;
  }

  count(image: Counted, via: DownloadVia): void {
    this.totals[via]++;
    const day = this.today();
    const key = `${day} ${image.fingerprint} ${via} ${image.product}`;
    const pending = this.pending.get(key);
    if (pending) pending.count++;
    else this.pending.set(key, { day, fingerprint: image.fingerprint, product: image.product, via, count: 1 });
  }

  private day = '';
  private dayEndsAt = 0;

  /** The UTC day, worked out again only when the last one ended (it is asked per download). */
  private today(): string {
    const now = this.now();
    if (now.getTime() >= this.dayEndsAt || now.getTime() < this.dayEndsAt - 86_400_000) {
      this.day = dayOf(now);
      this.dayEndsAt = Date.parse(this.day) + 86_400_000;
    }
    return this.day;
  }

  /** Writes what was counted so far; one flush at a time, in order. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (!this.pending.size) return;
      const batch = this.pending;
      this.pending = new Map();
      try {
        await this.store.add([...batch.values()]);
      } catch (err) {
        // Kept for the next flush, added to whatever was counted meanwhile.
        for (const [key, c] of batch) {
          const pending = this.pending.get(key);
          if (pending) pending.count += c.count;
          else this.pending.set(key, c);
        }
        this.log.error('writing download counts failed; kept for the next try', { err });
      }
    });
    return this.flushing;
  }

  start(intervalMs = flushIntervalMs): void {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what is left. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}

/** `--since`: a day (YYYY-MM-DD) or a duration back from now (30d, 12h), as the first day to count. */
export function sinceDay(text: string, now = new Date()): string {
  if (/^\d{4}-\d{2}-\d{2}$/.test(text) && !Number.isNaN(Date.parse(text))) return text;
  try {
    return dayOf(new Date(now.getTime() - parseDuration(text) * 1000));
  } catch {
    throw new AppError(ErrorCodes.invalidArgument, `Invalid --since "${text}"`, { hint: 'Use a day (2026-11-01) or a duration back from now (30d, 12h).' });
  }
}

/** An image's downloads: all of them, and those of the last 30 days (today included). */
export async function imageDownloads(usage: UsageStore, fingerprint: string, now = new Date()): Promise<{ total: number; last30Days: number }> {
  const counts = await usage.list({ fingerprint });
  const from = daysBefore(now, 29);
  return {
    total: counts.reduce((n, c) => n + c.count, 0),
    last30Days: counts.reduce((n, c) => n + (c.day >= from ? c.count : 0), 0),
  };
}

/** What the catalogue shows (`/catalogue/v1/downloads.json`). */
export interface CatalogueDownloads {
  /** The last 30 days, oldest first, today last. */
  days: string[];
  products: Record<string, { total: number; last_30_days: number[] }>;
  /** All-time downloads per image fingerprint. */
  images: Record<string, number>;
}

export async function catalogueDownloads(usage: UsageStore, now = new Date()): Promise<CatalogueDownloads> {
  const days = dailySeries([], now, 30).map((d) => d.day);
  const [recent, productTotals, imageTotals] = await Promise.all([usage.list({ since: days[0]! }), usage.totals('product'), usage.totals('fingerprint')]);
  const byProduct = Map.groupBy(recent, (c) => c.product);
  const products: CatalogueDownloads['products'] = {};
  for (const [product, total] of productTotals) {
    products[product] = { total, last_30_days: dailySeries(byProduct.get(product) ?? [], now, 30).map((d) => d.count) };
  }
  return { days, products, images: Object.fromEntries(imageTotals) };
}
