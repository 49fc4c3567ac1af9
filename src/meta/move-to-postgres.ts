/**
 * `wharf db migrate --from DATA_DIR`: an embedded store's metadata (wharf.db, usage.db, webhooks.db) copied into
 * PostgreSQL, row for row: both drivers keep the same columns (rows.ts), so a row is copied as it
 * is, grace periods, lazy sources and revisions included. One transaction: the catalogue arrives
 * whole or not at all, and only into an empty one. Grants (secrets, operations, leases) are not
 * copied: they expire within the hour, and clients ask again.
 */
import { DatabaseSync } from 'node:sqlite';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AppError, ErrorCodes } from '../errors.ts';
import { PostgresDatabase, type Query } from './postgres-db.ts';
import { PostgresMetaStore } from './postgres.ts';
import { PostgresUsageStore } from './usage-postgres.ts';
import { PostgresWebhookLedger } from './webhooks-postgres.ts';

/** SQLite table -> PostgreSQL table, in an order that satisfies every reference. */
const catalogueTables: [string, string][] = [
  ['blobs', 'blobs'],
  ['images', 'images'],
  ['aliases', 'aliases'],
  ['image_deltas', 'image_deltas'],
  ['blob_owners', 'blob_owners'],
  ['oci_blobs', 'oci_blobs'],
  ['oci_manifests', 'oci_manifests'],
  ['oci_tags', 'oci_tags'],
  ['channel_history', 'channel_history'],
  ['channel_settings', 'channel_settings'],
  ['views', 'views'],
  ['view_tokens', 'view_tokens'],
  ['test_results', 'test_results'],
  ['push_tokens', 'push_tokens'],
  ['events', 'events'],
  ['certificates', 'certificates'],
  ['trust_tokens', 'trust_tokens'],
  ['remotes', 'remotes'],
  ['mirrors', 'mirrors'],
  ['sites', 'sites'],
];

export interface MoveReport {
  /** Rows copied per table. */
  rows: Record<string, number>;
}

export async function moveToPostgres(dataDir: string, url: string): Promise<MoveReport> {
  const catalogue = join(dataDir, 'wharf.db');
  if (!existsSync(catalogue)) throw new AppError(ErrorCodes.invalidArgument, `${dataDir} holds no wharf store (no wharf.db)`);
  // The schemas first (each driver migrates its own), then the rows in one transaction.
  await (await PostgresMetaStore.open(url)).close();
  await (await PostgresUsageStore.open(url)).close();
  await (await PostgresWebhookLedger.open(url)).close();
  const db = await PostgresDatabase.open(url, 'catalogue', []);
  const rows: Record<string, number> = {};
  try {
    await db.write(async (q) => {
      for (const [, table] of catalogueTables) {
        const { rows: found } = await q<{ n: number }>(`SELECT count(*) AS n FROM ${table}`);
        if (found[0]!.n > 0) throw new AppError(ErrorCodes.conflict, `The database already holds a catalogue (${table} is not empty): nothing was copied`, { hint: 'Migrate into an empty database.' });
      }
      await copyTables(q, catalogue, catalogueTables, rows);
      const usage = join(dataDir, 'usage.db');
      if (existsSync(usage)) await copyTables(q, usage, [['downloads', 'usage_downloads']], rows);
      const webhooks = join(dataDir, 'webhooks.db');
      if (existsSync(webhooks)) {
        await copyTables(q, webhooks, [['states', 'webhook_states'], ['deliveries', 'webhook_deliveries']], rows);
        // No claim survives the move (its times are the old host's clock); the log's ids go on after the copied ones.
        await q('UPDATE webhook_states SET holder = NULL, expires_at = NULL');
        await q(`SELECT setval(pg_get_serial_sequence('webhook_deliveries', 'id'), COALESCE((SELECT max(id) FROM webhook_deliveries), 0) + 1, false)`);
      }
      // Every replica renders again.
      await q('UPDATE wharf_changes SET version = version + 1');
    });
  } finally {
    await db.close();
  }
  return { rows };
}

async function copyTables(q: Query, file: string, tables: [string, string][], rows: Record<string, number>) {
  // Read-only: a server may be using the store meanwhile, and nothing here changes it.
  const source = new DatabaseSync(file, { readOnly: true });
  try {
    for (const [from, to] of tables) {
      const all = source.prepare(`SELECT * FROM ${from}`).all() as Record<string, unknown>[];
      for (const row of all) {
        const columns = Object.keys(row);
        await q(`INSERT INTO ${to} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`, Object.values(row));
      }
      rows[to] = all.length;
    }
  } finally {
    source.close();
  }
}
