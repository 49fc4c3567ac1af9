/**
 * Usage statistics: how often each image was downloaded, per UTC day. A download is counted
 * once, when it completed (or was handed to a mirror), under the product the image belonged to
 * at that moment, so a product's history outlives the versions it had.
 */

/**
 * How the image left: `file`, its main file served whole by this server (the rootfs or disk of a
 * split image, the unified tarball, or a delta that builds it); `redirect`, a download of that
 * file sent to a mirror site (GeoIP steering); `export`, an LXD/Incus API export.
 */
export type DownloadVia = 'file' | 'redirect' | 'export';
export const downloadVias: readonly DownloadVia[] = ['file', 'redirect', 'export'];

/** Which image a download is counted for. */
export interface Counted {
  fingerprint: string;
  /** Its product key (os:release:arch:variant, or image:FINGERPRINT when it has none). */
  product: string;
}

export interface DownloadCount extends Counted {
  /** YYYY-MM-DD, UTC. */
  day: string;
  via: DownloadVia;
  count: number;
}

export const dayOf = (date: Date): string => date.toISOString().slice(0, 10);

/** The day `days` before `date` (UTC). */
export const daysBefore = (date: Date, days: number): string => dayOf(new Date(date.getTime() - days * 86_400_000));

export interface UsageTotal {
  /** The fingerprint, product key or day the counts were summed by. */
  key: string;
  total: number;
  byVia: Record<DownloadVia, number>;
}

/** Sums counts by image, product or day; biggest total first (days in date order). */
export function usageTotals(counts: DownloadCount[], by: 'image' | 'product' | 'day'): UsageTotal[] {
  const totals = new Map<string, UsageTotal>();
  for (const c of counts) {
    const key = by === 'image' ? c.fingerprint : by === 'product' ? c.product : c.day;
    let total = totals.get(key);
    if (!total) totals.set(key, (total = { key, total: 0, byVia: { file: 0, redirect: 0, export: 0 } }));
    total.total += c.count;
    total.byVia[c.via] += c.count;
  }
  const list = [...totals.values()];
  return by === 'day' ? list.sort((a, b) => (a.key < b.key ? -1 : 1)) : list.sort((a, b) => b.total - a.total || (a.key < b.key ? -1 : 1));
}

/** Downloads per day for the `days` days ending with `until` (oldest first, zeros included). */
export function dailySeries(counts: DownloadCount[], until: Date, days: number): { day: string; count: number }[] {
  const perDay = new Map<string, number>();
  for (const c of counts) perDay.set(c.day, (perDay.get(c.day) ?? 0) + c.count);
  const series = [];
  for (let back = days - 1; back >= 0; back--) {
    const day = daysBefore(until, back);
    series.push({ day, count: perDay.get(day) ?? 0 });
  }
  return series;
}
