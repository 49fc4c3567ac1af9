/**
 * Where download counts are kept. Its own contract (and, in the embedded default, its own SQLite
 * file) because counts are written all the time while serving: in the catalogue's database every
 * flush would move its change counter and make every serving process render the index again.
 *
 * Drivers: SQLite (`usage-sqlite.ts`) and memory (`usage-memory.ts`); test/conformance/usage.test.ts
 * runs the contract against both. Same rules as store.ts: async, atomic writes, values returned.
 */
import type { DownloadCount } from '../domain/usage.ts';

export interface UsageQuery {
  /** First day (YYYY-MM-DD) to include; all days when absent. */
  since?: string;
  fingerprint?: string;
  product?: string;
}

export interface UsageStore {
  /**
   * Adds these counts to what is kept, all or none (`disk_full` when the storage is full). Counts
   * of the same day, image, product and way add up, whichever handle wrote them.
   */
  add(counts: DownloadCount[]): Promise<void>;
  /** The kept counts matching `query`, one per day, image, product and way. */
  list(query?: UsageQuery): Promise<DownloadCount[]>;
  /** All-time downloads per image or per product (those with none are left out). */
  totals(by: 'fingerprint' | 'product'): Promise<Map<string, number>>;
  close(): Promise<void>;
}
