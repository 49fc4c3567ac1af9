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

/** The SQL drivers' selection of counts for `query` (`?` placeholders), ordered as `list` returns them. */
export function usageSelect(table: string, query: UsageQuery): { sql: string; args: string[] } {
  const where: string[] = [];
  const args: string[] = [];
  if (query.since !== undefined) where.push('day >= ?'), args.push(query.since);
  if (query.fingerprint !== undefined) where.push('fingerprint = ?'), args.push(query.fingerprint);
  if (query.product !== undefined) where.push('product = ?'), args.push(query.product);
  return { sql: `SELECT day, fingerprint, product, via, count FROM ${table}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY day, fingerprint, product, via`, args };
}
