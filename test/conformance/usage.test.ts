/**
 * The UsageStore contract (src/meta/usage.ts), run against every driver: counts add up whichever
 * handle wrote them, a batch is written whole, queries filter by day, image and product.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SqliteUsageStore } from '../../src/meta/usage-sqlite.ts';
import { MemoryUsageStore } from '../../src/meta/usage-memory.ts';
import { PostgresUsageStore } from '../../src/meta/usage-postgres.ts';
import { freshDatabase } from '../helpers/postgres.ts';
import type { UsageStore } from '../../src/meta/usage.ts';
import type { DownloadCount } from '../../src/domain/usage.ts';
import { tempDir } from '../helpers/env.ts';
import { sha, type Context } from './meta-drivers.ts';

function closeAfter<T extends UsageStore>(t: Context, store: T): T {
  t.after(() => store.close());
  return store;
}

const drivers: { name: string; open(t: Context): Promise<{ store: UsageStore; peer(): UsageStore }> }[] = [
  {
    name: 'sqlite',
    async open(t) {
      const path = join(await tempDir(t), 'usage.db');
      return { store: closeAfter(t, new SqliteUsageStore(path)), peer: () => closeAfter(t, new SqliteUsageStore(path)) };
    },
  },
  {
    name: 'memory',
    async open() {
      const store = new MemoryUsageStore();
      return { store, peer: () => store.share() };
    },
  },
  {
    name: 'postgres',
    async open(t) {
      const url = await freshDatabase();
      const store = closeAfter(t, await PostgresUsageStore.open(url));
      const other = closeAfter(t, await PostgresUsageStore.open(url));
      return { store, peer: () => other };
    },
  },
];

const a = sha('a', 1);
const b = sha('b', 2);
const count = (day: string, fingerprint: string, via: DownloadCount['via'], n: number, product = `p-${fingerprint.slice(0, 1)}`): DownloadCount => ({
  day,
  fingerprint,
  product,
  via,
  count: n,
});

for (const driver of drivers) {
  test(`${driver.name} usage: counts of the same day, image, product and way add up across handles`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    assert.deepEqual(await store.list(), []);
    await store.add([count('2026-11-20', a, 'file', 2), count('2026-11-20', a, 'export', 1)]);
    await other.add([count('2026-11-20', a, 'file', 3), count('2026-11-21', b, 'redirect', 4)]);
    await store.add([]);
    assert.deepEqual(await store.list(), [count('2026-11-20', a, 'export', 1), count('2026-11-20', a, 'file', 5), count('2026-11-21', b, 'redirect', 4)]);
    assert.deepEqual(await other.list(), await store.list());
    assert.deepEqual(await store.totals('fingerprint'), new Map([[a, 6], [b, 4]]));
    assert.deepEqual(await other.totals('product'), new Map([['p-a', 6], ['p-b', 4]]));
  });

  test(`${driver.name} usage: filtered by first day, image and product; values returned are copies`, async (t) => {
    const { store } = await driver.open(t);
    await store.add([
      count('2026-10-31', a, 'file', 1),
      count('2026-11-01', a, 'file', 2),
      count('2026-11-02', b, 'file', 3),
      count('2026-11-02', a, 'file', 4, 'moved'),
    ]);
    assert.deepEqual(
      (await store.list({ since: '2026-11-01' })).map((c) => c.count),
      [2, 4, 3],
    );
    assert.deepEqual(
      (await store.list({ fingerprint: a })).map((c) => c.count),
      [1, 2, 4],
    );
    assert.deepEqual(await store.list({ product: 'moved' }), [count('2026-11-02', a, 'file', 4, 'moved')]);
    assert.deepEqual(
      (await store.list({ since: '2026-11-02', fingerprint: a, product: `p-a` })),
      [],
    );
    const [first] = await store.list();
    first!.count = 1000;
    assert.equal((await store.list())[0]!.count, 1);
  });

  test(`${driver.name} usage: concurrent writers lose no count`, async (t) => {
    const { store, peer } = await driver.open(t);
    const handles = [store, peer(), peer()];
    await Promise.all(
      handles.flatMap((h, i) => Array.from({ length: 20 }, (_, n) => h.add([count('2026-11-22', a, 'file', 1), count('2026-11-22', sha('c', i * 100 + n), 'file', 1)]))),
    );
    const counts = await store.list();
    assert.equal(counts.find((c) => c.fingerprint === a)!.count, 60);
    assert.equal(counts.length, 61);
  });
}
