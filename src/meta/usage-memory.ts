/** The usage store in memory, for tests; `share()` is another handle on the same counts. */
import type { DownloadCount } from '../domain/usage.ts';
import type { UsageQuery, UsageStore } from './usage.ts';

const keyOf = (c: DownloadCount) => [c.day, c.fingerprint, c.product, c.via].join('\0');

export class MemoryUsageStore implements UsageStore {
  private readonly counts: Map<string, DownloadCount>;

  constructor(counts = new Map<string, DownloadCount>()) {
    this.counts = counts;
  }

  share(): MemoryUsageStore {
    return new MemoryUsageStore(this.counts);
  }

  async add(counts: DownloadCount[]): Promise<void> {
    for (const c of counts) {
      const kept = this.counts.get(keyOf(c));
      this.counts.set(keyOf(c), { ...c, count: (kept?.count ?? 0) + c.count });
    }
  }

  async list(query: UsageQuery = {}): Promise<DownloadCount[]> {
    return [...this.counts.values()]
      .filter((c) => (query.since === undefined || c.day >= query.since) && (query.fingerprint ?? c.fingerprint) === c.fingerprint && (query.product ?? c.product) === c.product)
      .sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0))
      .map((c) => ({ ...c }));
  }

  async totals(by: 'fingerprint' | 'product'): Promise<Map<string, number>> {
    const totals = new Map<string, number>();
    for (const c of this.counts.values()) totals.set(c[by], (totals.get(c[by]) ?? 0) + c.count);
    return totals;
  }

  async close(): Promise<void> {}
}
