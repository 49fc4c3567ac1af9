/** The usage store on PostgreSQL: the download counts of every replica, added up in one table. */
import type { DownloadCount } from '../domain/usage.ts';
import { usageSelect, type UsageQuery, type UsageStore } from './usage.ts';
import { PostgresDatabase } from './postgres-db.ts';

const text = 'text COLLATE "C"';

const migrations = [
  `CREATE TABLE usage_downloads (
     day ${text} NOT NULL, fingerprint ${text} NOT NULL, product ${text} NOT NULL, via ${text} NOT NULL, count bigint NOT NULL,
     PRIMARY KEY (day, fingerprint, product, via)
   );
   CREATE INDEX usage_downloads_by_product ON usage_downloads (product, day);
   CREATE INDEX usage_downloads_by_image ON usage_downloads (fingerprint, day);`,
];

export class PostgresUsageStore implements UsageStore {
  private readonly db: PostgresDatabase;

  private constructor(db: PostgresDatabase) {
    this.db = db;
  }

  static async open(url: string): Promise<PostgresUsageStore> {
    return new PostgresUsageStore(await PostgresDatabase.open(url, 'usage', migrations));
  }

  async add(counts: DownloadCount[]): Promise<void> {
    if (!counts.length) return;
    await this.db.write(async (q) => {
      for (const c of counts) {
        await q('INSERT INTO usage_downloads (day, fingerprint, product, via, count) VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, fingerprint, product, via) DO UPDATE SET count = usage_downloads.count + excluded.count', [
          c.day,
          c.fingerprint,
          c.product,
          c.via,
          c.count,
        ]);
      }
    });
  }

  async list(query: UsageQuery = {}): Promise<DownloadCount[]> {
    const { sql, args } = usageSelect('usage_downloads', query);
    const rows = await this.db.rows<DownloadCount>(sql, args);
    return rows.map((r) => ({ day: r.day, fingerprint: r.fingerprint, product: r.product, via: r.via, count: r.count }));
  }

  async totals(by: 'fingerprint' | 'product'): Promise<Map<string, number>> {
    const column = by === 'product' ? 'product' : 'fingerprint';
    const rows = await this.db.rows<{ key: string; total: number }>(`SELECT ${column} AS key, sum(count)::bigint AS total FROM usage_downloads GROUP BY ${column}`);
    return new Map(rows.map((r) => [r.key, r.total]));
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
