/**
 * The webhook ledger contract (src/meta/webhooks.ts) against every driver, with handles as
 * processes (`peer()`: another connection to the same store) and a clock the suite moves: the
 * first claim sets the cursor, a claim is one holder's until settled or expired, a settle moves
 * the cursor on (never back) or schedules a retry, and one by a holder that lost its claim writes
 * nothing; the log reads newest first. Of many processes claiming one webhook at once exactly one
 * wins; a driver that reads, yields and then writes (as a networked driver without a transaction
 * would) must fail that check, and the test after the drivers' shows it does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SqliteWebhookLedger } from '../../src/meta/webhooks-sqlite.ts';
import { MemoryWebhookLedger } from '../../src/meta/webhooks-memory.ts';
import { PostgresWebhookLedger } from '../../src/meta/webhooks-postgres.ts';
import type { WebhookClaim, WebhookDelivery, WebhookLedger, WebhookSettlement, WebhookState } from '../../src/meta/webhooks.ts';
import { freshDatabase } from '../helpers/postgres.ts';
import { tempDir } from '../helpers/env.ts';
import { until } from '../helpers/until.ts';
import type { Context } from './meta-drivers.ts';

/** A clock the test moves by hand. */
function testClock(start = 1_800_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

interface OpenedLedger {
  ledger: WebhookLedger;
  /** Another handle on the same ledger, as another process would have; closed after the test. */
  peer(): Promise<WebhookLedger>;
  clock: ReturnType<typeof testClock>;
}

function closeAfter<T extends WebhookLedger>(t: Context, ledger: T): T {
  t.after(() => ledger.close());
  return ledger;
}

const drivers: { name: string; open(t: Context): Promise<OpenedLedger> }[] = [
  {
    name: 'sqlite',
    async open(t) {
      const path = join(await tempDir(t), 'webhooks.db');
      const clock = testClock();
      return {
        clock,
        ledger: closeAfter(t, new SqliteWebhookLedger(path, { clock: clock.now })),
        peer: async () => closeAfter(t, new SqliteWebhookLedger(path, { clock: clock.now })),
      };
    },
  },
  {
    name: 'memory',
    async open(t) {
      const clock = testClock();
      const ledger = closeAfter(t, new MemoryWebhookLedger({ clock: clock.now }));
      return { clock, ledger, peer: async () => closeAfter(t, ledger.share()) };
    },
  },
  {
    name: 'postgres',
    async open(t) {
      const url = await freshDatabase();
      const clock = testClock();
      return {
        clock,
        ledger: closeAfter(t, await PostgresWebhookLedger.open(url, { clock: clock.now })),
        peer: async () => closeAfter(t, await PostgresWebhookLedger.open(url, { clock: clock.now })),
      };
    },
  },
];

const delivery = (webhook: string, event: number, attempt: number, at: string, more: Partial<WebhookDelivery> = {}): WebhookDelivery => ({
  webhook,
  event,
  type: 'image.promoted',
  attempt,
  outcome: 'delivered',
  status: 204,
  error: '',
  at,
  durationMs: 12.5,
  ...more,
});

const state = (name: string, cursor: number, more: Partial<WebhookState> = {}): WebhookState => ({ name, cursor, attempts: 0, nextAttemptAt: null, holder: null, ...more });

/** Claims and settles at once, as a dispatcher does after one attempt; fails the test when either is refused. */
async function attempt(ledger: WebhookLedger, name: string, result: WebhookSettlement, logged?: WebhookDelivery, holder = 'host-1/10/aa'): Promise<WebhookClaim> {
  const claim = await ledger.claim(name, holder, 10_000, 0);
  assert.ok(claim, `${name} claimed`);
  assert.equal(await ledger.settle(name, holder, result, logged), true, `${name} settled`);
  return claim;
}

/**
 * Many processes claim one webhook at once, round after round: when it is new, when it was
 * settled, and when its holder's claim expired (`pass` moves the store's clock past it). Exactly
 * one may win each time.
 */
async function oneClaimPerRound(handles: WebhookLedger[], pass: (ms: number) => void | Promise<void>, rounds = 5): Promise<void> {
  const race = async (what: string, name: string) => {
    const claims = await Promise.all(handles.map((h, i) => h.claim(name, `holder-${i}`, 1_000, 0)));
    const winners = claims.flatMap((c, i) => (c ? [i] : []));
    assert.equal(winners.length, 1, `${what}: ${winners.length} holders claimed one webhook`);
    return `holder-${winners[0]}`;
  };
  for (let round = 0; round < rounds; round++) {
    const name = `hook-${round}`;
    const first = await race(`round ${round}, a new webhook`, name);
    assert.equal(await handles[0]!.settle(name, first, { advanceTo: 1 }), true);
    await race(`round ${round}, a settled webhook`, name);
    await pass(1_000);
    await race(`round ${round}, a claim expired`, name);
  }
}

for (const driver of drivers) {
  test(`${driver.name} webhooks: the first claim sets the cursor at start; a claim is one holder's until settled or expired`, async (t) => {
    const { ledger, peer, clock } = await driver.open(t);
    const other = await peer();
    assert.deepEqual(await ledger.states(), []);
    assert.deepEqual(await ledger.claim('ci', 'host-1/10/aa', 1_000, 42), { cursor: 42, attempts: 0 }, 'a new webhook starts at the end of the event log');
    assert.equal(await other.claim('ci', 'host-2/10/bb', 1_000, 99), undefined, 'held by another, live');
    clock.advance(500);
    assert.deepEqual(await ledger.claim('ci', 'host-1/10/aa', 1_000, 7), { cursor: 42, attempts: 0 }, 'the same holder claims again (renewed); start is ignored');
    assert.deepEqual(await other.states(), [state('ci', 42, { holder: 'host-1/10/aa' })]);
    clock.advance(600);
    assert.equal(await other.claim('ci', 'host-2/10/bb', 1_000, 99), undefined, 'renewed: still live');
    // The same process id on another host, or after a restart, is another holder.
    assert.equal(await other.claim('ci', 'host-1/10/cc', 1_000, 99), undefined);

    // The holder dies: its claim is free once expired, and the cursor is where it left it.
    clock.advance(400);
    assert.deepEqual(await ledger.states(), [state('ci', 42)], 'an expired claim has no holder');
    assert.deepEqual(await other.claim('ci', 'host-2/10/bb', 1_000, 99), { cursor: 42, attempts: 0 }, 'taken over once expired');
    assert.equal(await ledger.settle('ci', 'host-1/10/aa', { advanceTo: 50 }, delivery('ci', 43, 1, '2026-11-20T10:00:00.000Z')), false, 'the old holder lost it');
    assert.equal(await ledger.settle('ci', 'host-1/10/aa', { retryInMs: 1_000 }, delivery('ci', 43, 1, '2026-11-20T10:00:00.000Z', { outcome: 'failed' })), false);
    assert.deepEqual(await other.states(), [state('ci', 42, { holder: 'host-2/10/bb' })], 'nothing written: cursor, attempts and claim as they were');
    assert.deepEqual(await other.deliveries(), [], 'nothing logged');

    assert.equal(await other.settle('ci', 'host-2/10/bb', { advanceTo: 43 }, delivery('ci', 43, 1, '2026-11-20T10:00:01.000Z')), true);
    assert.deepEqual(await ledger.states(), [state('ci', 43)], 'settled: moved on, and free');
    assert.equal(await other.settle('ci', 'host-2/10/bb', { advanceTo: 44 }), false, 'a claim is settled once');
    assert.deepEqual(await ledger.claim('ci', 'host-1/10/aa', 1_000, 0), { cursor: 43, attempts: 0 }, 'settled: free at once for anyone');

    // Expired, but taken by no one: still its holder's to settle.
    clock.advance(5_000);
    assert.equal(await ledger.settle('ci', 'host-1/10/aa', { advanceTo: 44 }), true);
    assert.equal(await ledger.settle('never-claimed', 'host-1/10/aa', { advanceTo: 1 }), false);
    assert.deepEqual(await other.states(), [state('ci', 44)], 'a settle of a webhook never claimed creates nothing');
  });

  test(`${driver.name} webhooks: an advance moves the cursor on, never back, and resets the attempts; a retry counts one and waits its time`, async (t) => {
    const { ledger, peer, clock } = await driver.open(t);
    const other = await peer();
    const failed = (attempt: number) => delivery('ci', 11, attempt, `2026-11-20T10:00:0${attempt}.000Z`, { outcome: 'failed', status: 503, error: 'HTTP 503' });

    assert.deepEqual(await attempt(ledger, 'ci', { retryInMs: 1_000 }, failed(1)), { cursor: 0, attempts: 0 });
    const retryAt = new Date(clock.now() + 1_000).toISOString();
    assert.deepEqual(await other.states(), [state('ci', 0, { attempts: 1, nextAttemptAt: retryAt })]);
    assert.equal(await other.claim('ci', 'host-2/10/bb', 1_000, 0), undefined, 'not due before its time, for anyone');
    assert.equal(await ledger.claim('ci', 'host-1/10/aa', 1_000, 0), undefined, 'not even for the last holder');
    clock.advance(999);
    assert.equal(await other.claim('ci', 'host-2/10/bb', 1_000, 0), undefined);
    clock.advance(1);
    assert.deepEqual(await other.claim('ci', 'host-2/10/bb', 1_000, 0), { cursor: 0, attempts: 1 }, 'due when its time has come');
    assert.equal(await other.settle('ci', 'host-2/10/bb', { retryInMs: 2_000 }, failed(2)), true);
    assert.deepEqual((await ledger.states())[0], state('ci', 0, { attempts: 2, nextAttemptAt: new Date(clock.now() + 2_000).toISOString() }));
    clock.advance(2_000);
    assert.deepEqual(await ledger.claim('ci', 'host-1/10/aa', 1_000, 0), { cursor: 0, attempts: 2 });
    assert.equal(await ledger.settle('ci', 'host-1/10/aa', { advanceTo: 11 }, delivery('ci', 11, 3, '2026-11-20T10:00:03.000Z')), true);
    assert.deepEqual(await other.states(), [state('ci', 11)], 'delivered: attempts reset, no retry pending');

    assert.deepEqual(await attempt(other, 'ci', { advanceTo: 5 }), { cursor: 11, attempts: 0 });
    assert.deepEqual((await ledger.states())[0], state('ci', 11), 'never backwards');
    await attempt(ledger, 'ci', { retryInMs: 0 });
    assert.deepEqual(await attempt(other, 'ci', { advanceTo: 2 ** 40 }), { cursor: 11, attempts: 1 }, 'a retry in 0 ms is due at once');
    assert.deepEqual(await ledger.states(), [state('ci', 2 ** 40)], 'seqs beyond 32 bits');
    assert.deepEqual(
      (await ledger.deliveries('ci')).map((d) => [d.attempt, d.outcome]),
      [
        [3, 'delivered'],
        [2, 'failed'],
        [1, 'failed'],
      ],
    );
  });

  test(`${driver.name} webhooks: the log reads newest first, by webhook, at most limit; records are copies`, async (t) => {
    const { ledger, peer } = await driver.open(t);
    const other = await peer();
    const logged = [
      delivery('a', 1, 1, '2026-11-20T10:00:00.000Z', { outcome: 'failed', status: null, error: 'connection refused', durationMs: 3001 }),
      delivery('b', 1, 1, '2026-11-20T10:00:05.000Z', { type: 'image.deleted', outcome: 'gave up', status: 410, error: 'HTTP 410' }),
      delivery('a', 1, 2, '2026-11-20T10:00:02.000Z'),
      delivery('a', 3, 1, '2026-11-20T10:00:02.000Z', { durationMs: 0.25 }),
      delivery('a', 2, 1, '2026-11-20T10:00:02.000Z'),
      delivery('b', 2, 1, '2026-11-20T10:00:01.000Z'),
    ];
    for (const [i, d] of logged.entries()) await attempt(i % 2 ? other : ledger, d.webhook, { advanceTo: d.event }, d);
    // Newest first by at, then event, then attempt.
    const newest = [logged[1], logged[3], logged[4], logged[2], logged[5], logged[0]];
    assert.deepEqual(await ledger.deliveries(), newest);
    assert.deepEqual(await other.deliveries('a'), [logged[3], logged[4], logged[2], logged[0]]);
    assert.deepEqual(await ledger.deliveries('b', 1), [logged[1]]);
    assert.deepEqual(await other.deliveries(undefined, 2), newest.slice(0, 2));
    assert.deepEqual(await ledger.deliveries(undefined, 0), []);
    assert.deepEqual(await ledger.deliveries('c'), []);

    // Copies both ways: changing what was passed in or handed out changes nothing kept.
    const passed = delivery('c', 1, 1, '2026-11-20T11:00:00.000Z');
    await attempt(ledger, 'c', { advanceTo: 1 }, passed);
    passed.error = 'changed by the caller';
    const [handed] = await ledger.deliveries('c');
    handed!.outcome = 'failed';
    assert.deepEqual(await other.deliveries('c'), [delivery('c', 1, 1, '2026-11-20T11:00:00.000Z')]);
    const [kept] = await ledger.states();
    kept!.cursor = 1_000;
    assert.deepEqual((await ledger.states())[0], state('a', 3));

    // At most 100 when not told.
    for (let event = 2; event <= 101; event++) await attempt(other, 'c', { advanceTo: event }, delivery('c', event, 1, '2026-11-20T12:00:00.000Z'));
    const all = await ledger.deliveries('c');
    assert.equal(all.length, 100);
    assert.deepEqual([all[0]!.event, all[99]!.event], [101, 2]);
  });

  test(`${driver.name} webhooks: forget drops a state, keeps its log; a webhook configured again starts afresh`, async (t) => {
    const { ledger, peer, clock } = await driver.open(t);
    const other = await peer();
    await attempt(ledger, 'old', { advanceTo: 5 }, delivery('old', 5, 1, '2026-11-20T10:00:00.000Z'));
    await attempt(ledger, 'kept', { retryInMs: 60_000 });
    assert.deepEqual(await ledger.claim('held', 'host-1/10/aa', 1_000, 3), { cursor: 3, attempts: 0 });
    clock.advance(10);
    await other.forget('old');
    await other.forget('held');
    await other.forget('never-configured');
    assert.deepEqual(await ledger.states(), [state('kept', 0, { attempts: 1, nextAttemptAt: new Date(clock.now() - 10 + 60_000).toISOString() })]);
    assert.deepEqual(await ledger.deliveries('old'), [delivery('old', 5, 1, '2026-11-20T10:00:00.000Z')], 'the log stays');
    assert.equal(await ledger.settle('held', 'host-1/10/aa', { advanceTo: 9 }, delivery('held', 4, 1, '2026-11-20T10:00:01.000Z')), false, 'a forgotten webhook cannot be settled');
    assert.deepEqual(await ledger.deliveries('held'), []);
    assert.deepEqual(await other.claim('old', 'host-2/10/bb', 1_000, 100), { cursor: 100, attempts: 0 }, 'configured again: from the new start');
  });

  test(`${driver.name} webhooks: states lists every webhook by name, with the holder of a live claim only`, async (t) => {
    const { ledger, peer, clock } = await driver.open(t);
    const other = await peer();
    await ledger.claim('zeta', 'host-1/10/aa', 1_000, 7);
    await other.claim('alpha', 'host-2/10/bb', 5_000, 3);
    await attempt(ledger, 'mid', { retryInMs: 30_000 });
    const retryAt = new Date(clock.now() + 30_000).toISOString();
    clock.advance(1_000);
    assert.deepEqual(await other.states(), [state('alpha', 3, { holder: 'host-2/10/bb' }), state('mid', 0, { attempts: 1, nextAttemptAt: retryAt }), state('zeta', 7)]);
  });

  test(`${driver.name} webhooks: of many processes claiming one webhook at once, exactly one wins`, async (t) => {
    const { ledger, peer, clock } = await driver.open(t);
    const handles = [ledger, ...(await Promise.all(Array.from({ length: 7 }, () => peer())))];
    await oneClaimPerRound(handles, clock.advance);
  });
}

/**
 * What a networked driver would be without a transaction or a compare-and-set: its claim reads the
 * state, waits on the network, then writes. The suite must catch it.
 */
type YieldingStates = Map<string, { cursor: number; attempts: number; holder: string | null; expiresAt: number }>;

class YieldingLedger implements WebhookLedger {
  private readonly held: YieldingStates;
  private readonly now: () => number;
  constructor(held: YieldingStates, now: () => number) {
    this.held = held;
    this.now = now;
  }
  async claim(name: string, holder: string, ttlMs: number, start: number): Promise<WebhookClaim | undefined> {
    const read = this.held.get(name);
    await new Promise((resolve) => setImmediate(resolve)); // the round trip
    if (read && read.holder !== null && read.holder !== holder && read.expiresAt > this.now()) return undefined;
    const written = { cursor: read?.cursor ?? start, attempts: read?.attempts ?? 0, holder, expiresAt: this.now() + ttlMs };
    this.held.set(name, written);
    return { cursor: written.cursor, attempts: written.attempts };
  }
  async settle(name: string, holder: string, result: WebhookSettlement): Promise<boolean> {
    const kept = this.held.get(name);
    if (kept?.holder !== holder) return false;
    if ('advanceTo' in result) this.held.set(name, { ...kept, cursor: Math.max(kept.cursor, result.advanceTo), attempts: 0, holder: null });
    return true;
  }
  async deliveries(): Promise<WebhookDelivery[]> {
    return [];
  }
  async states(): Promise<WebhookState[]> {
    return [];
  }
  async forget(): Promise<void> {}
  async close(): Promise<void> {}
}

test('the suite catches a driver that reads, yields and writes: several holders claim one webhook', async () => {
  const shared: YieldingStates = new Map();
  const clock = testClock();
  await assert.rejects(oneClaimPerRound([0, 1, 2, 3, 4, 5, 6, 7].map(() => new YieldingLedger(shared, clock.now)), clock.advance), /[2-8] holders claimed one webhook/);
});

test("postgres webhooks: one clock, the database server's: claims expire and retries come due in real time, whatever a host's clock says", async (t) => {
  const url = await freshDatabase();
  const [a, b] = [closeAfter(t, await PostgresWebhookLedger.open(url)), closeAfter(t, await PostgresWebhookLedger.open(url))];
  const hostNow = Date.now;
  const skewed = (ms: number) => t.mock.method(Date, 'now', () => hostNow() + ms);

  assert.deepEqual(await a.claim('ci', 'host-a', 300, 5), { cursor: 5, attempts: 0 });
  // Host B's clock runs an hour ahead: by its clock A's claim expired long ago.
  const ahead = skewed(3_600_000);
  assert.equal(await b.claim('ci', 'host-b', 300, 5), undefined, 'a live claim is not taken by a host whose clock runs ahead');
  ahead.mock.restore();
  assert.deepEqual(await until('the claim expires', () => b.claim('ci', 'host-b', 300, 5), 5_000, 50), { cursor: 5, attempts: 0 });

  assert.equal(await b.settle('ci', 'host-b', { retryInMs: 300 }, delivery('ci', 6, 1, new Date().toISOString(), { outcome: 'failed', status: 500 })), true);
  const [pending] = await a.states();
  const due = Date.parse(pending!.nextAttemptAt!);
  assert.ok(Math.abs(due - (Date.now() + 300)) < 2_000, `the retry is due about 300 ms from now by the server's clock (${pending!.nextAttemptAt})`);
  assert.equal(await a.claim('ci', 'host-a', 300, 5), undefined, 'not due yet');
  assert.deepEqual(await until('the retry comes due', () => a.claim('ci', 'host-a', 300, 5), 5_000, 50), { cursor: 5, attempts: 1 });
  assert.equal(await a.settle('ci', 'host-a', { advanceTo: 6 }), true);
});
