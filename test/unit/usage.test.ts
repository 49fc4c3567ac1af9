/** Counting downloads: batched in memory, written in one go, kept when a write fails; the rules of what counts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DownloadCounter, imageDownloads, sinceDay } from '../../src/core/usage.ts';
import { dailySeries, usageTotals, type DownloadCount } from '../../src/domain/usage.ts';
import { MemoryUsageStore } from '../../src/meta/usage-memory.ts';
import { completesDownload } from '../../src/http/send-blob.ts';
import { silentLogger } from '../../src/log.ts';
import { AppError, ErrorCodes, isAppError } from '../../src/errors.ts';

const quiet = silentLogger;
const image = { fingerprint: 'f'.repeat(64), product: 'debian:12:amd64:default' };

test('counts stay in memory until a flush writes them, summed per day, image and way', async () => {
  const usage = new MemoryUsageStore();
  let now = new Date('2026-11-22T23:59:59Z');
  const counter = new DownloadCounter(usage, quiet, () => now.getTime());
  for (let i = 0; i < 1000; i++) counter.count(image, 'file');
  counter.count(image, 'export');
  assert.deepEqual(await usage.list(), [], 'nothing is written per download');
  now = new Date('2026-11-23T00:00:01Z');
  counter.count(image, 'file');
  // The same image from another publish (another object): one entry all the same.
  counter.count({ ...image }, 'file');
  await counter.flush();
  assert.deepEqual(
    (await usage.list()).map((c) => [c.day, c.via, c.count]),
    [
      ['2026-11-22', 'export', 1],
      ['2026-11-22', 'file', 1000],
      ['2026-11-23', 'file', 2],
    ],
  );
  assert.deepEqual(counter.totals, { file: 1002, redirect: 0, export: 1 });
  await counter.flush();
  assert.equal((await usage.list()).reduce((n, c) => n + c.count, 0), 1003, 'a second flush writes nothing again');
});

test('a failed write keeps its counts for the next flush, with what was counted meanwhile', async () => {
  const usage = new MemoryUsageStore();
  let full = true;
  const failing = Object.assign(Object.create(usage) as MemoryUsageStore, {
    add: async (counts: DownloadCount[]) => {
      if (full) throw new AppError(ErrorCodes.diskFull, 'full');
      return usage.add(counts);
    },
  });
  const counter = new DownloadCounter(failing, quiet, () => Date.parse('2026-11-22T12:00:00Z'));
  counter.count(image, 'redirect');
  counter.count(image, 'redirect');
  await counter.flush();
  assert.deepEqual(await usage.list(), []);
  counter.count(image, 'redirect');
  full = false;
  await counter.stop();
  assert.deepEqual((await usage.list()).map((c) => c.count), [3]);
});

test('what completes a download: the whole file, or a range reaching its last byte, never a tail read', () => {
  const size = 1000;
  assert.equal(completesDownload(undefined, { start: 0, end: 999 }, size), true);
  assert.equal(completesDownload('bytes=500-', { start: 500, end: 999 }, size), true, 'a resumed download');
  assert.equal(completesDownload('bytes=0-99', { start: 0, end: 99 }, size), false);
  assert.equal(completesDownload('bytes=-100', { start: 900, end: 999 }, size), false);
  assert.equal(completesDownload('bytes=-5000', { start: 0, end: 999 }, size), true, 'a suffix longer than the file is all of it');
});

test('--since takes a day or a duration back; sums and the 30-day series', async () => {
  const now = new Date('2026-11-23T10:00:00Z');
  assert.equal(sinceDay('2026-11-01', now), '2026-11-01');
  assert.equal(sinceDay('30d', now), '2026-10-24');
  assert.equal(sinceDay('12h', now), '2026-11-22');
  assert.throws(() => sinceDay('last week', now), (err: unknown) => isAppError(err) && err.code === 'invalid_argument');

  const counts: DownloadCount[] = [
    { day: '2026-10-01', fingerprint: 'a', product: 'p', via: 'file', count: 5 },
    { day: '2026-11-22', fingerprint: 'a', product: 'p', via: 'export', count: 2 },
    { day: '2026-11-23', fingerprint: 'b', product: 'p', via: 'redirect', count: 1 },
    { day: '2026-11-23', fingerprint: 'c', product: 'q', via: 'file', count: 9 },
  ];
  assert.deepEqual(usageTotals(counts, 'product'), [
    { key: 'q', total: 9, byVia: { file: 9, redirect: 0, export: 0 } },
    { key: 'p', total: 8, byVia: { file: 5, redirect: 1, export: 2 } },
  ]);
  assert.deepEqual(usageTotals(counts, 'day').map((t) => [t.key, t.total]), [
    ['2026-10-01', 5],
    ['2026-11-22', 2],
    ['2026-11-23', 10],
  ]);
  const series = dailySeries(counts, now, 30);
  assert.equal(series.length, 30);
  assert.deepEqual(series.at(0), { day: '2026-10-25', count: 0 });
  assert.deepEqual(series.slice(-2), [
    { day: '2026-11-22', count: 2 },
    { day: '2026-11-23', count: 10 },
  ]);

  const usage = new MemoryUsageStore();
  await usage.add(counts);
  assert.deepEqual(await imageDownloads(usage, 'a', now), { total: 7, last30Days: 2 });
});
