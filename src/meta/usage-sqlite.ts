/** The usage store of the embedded default: DATA/usage.db, beside (never inside) wharf.db. */
import type { DatabaseSync } from 'node:sqlite';
import type { DownloadCount } from '../domain/usage.ts';
import { inTransaction, openSqlite, storageError } from './sqlite-open.ts';
import { usageSelect, type UsageQuery, type UsageStore } from './usage.ts';

const schema = `
CREATE TABLE IF NOT EXISTS downloads (
  day TEXT NOT NULL, fingerprint TEXT NOT NULL, product TEXT NOT NULL, via TEXT NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY (day, fingerprint, product, via)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS downloads_by_product ON downloads (product, day);
CREATE INDEX IF NOT EXISTS downloads_by_image ON downloads (fingerprint, day);
`;

export class SqliteUsageStore implements UsageStore {
  private readonly db: DatabaseSync;

  constructor(path: string) {
    // A power cut may lose the last flush (seconds of counts); a crashed process loses nothing written.
    this.db = openSqlite(path, { synchronous: 'NORMAL' }, (db) => inTransaction(db, () => db.exec(schema)));
  }

  async add(counts: DownloadCount[]): Promise<void> {
    if (!counts.length) return;
    const upsert = this.db.prepare(
      'INSERT INTO downloads (day, fingerprint, product, via, count) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET count = count + excluded.count',
    );
    try {
      inTransaction(this.db, () => {
        for (const c of counts) upsert.run(c.day, c.fingerprint, c.product, c.via, c.count);
      });
    } catch (err) {
      throw storageError(err);
    }
  }

  async list(query: UsageQuery = {}): Promise<DownloadCount[]> {
    const { sql, args } = usageSelect('downloads', query);
    const rows = this.db.prepare(sql).all(...args) as unknown as DownloadCount[];
    return rows.map((r) => ({ day: r.day, fingerprint: r.fingerprint, product: r.product, via: r.via, count: r.count }));
  }

  async totals(by: 'fingerprint' | 'product'): Promise<Map<string, number>> {
    const column = by === 'product' ? 'product' : 'fingerprint';
    const rows = this.db.prepare(`SELECT ${column} AS key, sum(count) AS total FROM downloads GROUP BY ${column}`).all() as { key: string; total: number }[];
    return new Map(rows.map((r) => [r.key, r.total]));
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
