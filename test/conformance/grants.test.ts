/**
 * The grant store contract (src/meta/grants.ts) against every driver, with handles as processes
 * (`peer()`: another connection to the same store) and a clock the suite moves: leases are one
 * holder's at a time, renewed by it, free again once expired whoever held them; secrets and push
 * grants are used once; everything expires. A driver that reads, yields and then writes (as a
 * networked driver without a transaction or a lock would) must fail it: the last test shows it does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SqliteGrantStore } from '../../src/meta/grants-sqlite.ts';
import { MemoryGrantStore } from '../../src/meta/grants-memory.ts';
import { PostgresGrantStore } from '../../src/meta/grants-postgres.ts';
import { freshDatabase } from '../helpers/postgres.ts';
import type { GrantStore, Leases } from '../../src/meta/grants.ts';
import { tempDir } from '../helpers/env.ts';
import type { Context } from './meta-drivers.ts';

/** A clock the test moves by hand. */
function testClock(start = 1_800_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

interface OpenedGrants {
  store: GrantStore;
  peer(): GrantStore;
  clock: ReturnType<typeof testClock>;
}

function closeAfter<T extends GrantStore>(t: Context, store: T): T {
  t.after(() => store.close());
  return store;
}

const drivers: { name: string; open(t: Context): Promise<OpenedGrants> }[] = [
  {
    name: 'sqlite',
    async open(t) {
      const path = join(await tempDir(t), 'grants.db');
      const clock = testClock();
      return { clock, store: closeAfter(t, new SqliteGrantStore(path, { clock: clock.now })), peer: () => closeAfter(t, new SqliteGrantStore(path, { clock: clock.now })) };
    },
  },
  {
    name: 'memory',
    async open(t) {
      const clock = testClock();
      const store = closeAfter(t, new MemoryGrantStore({ clock: clock.now }));
      return { clock, store, peer: () => closeAfter(t, store.share()) };
    },
  },
  {
    name: 'postgres',
    async open(t) {
      const url = await freshDatabase();
      const clock = testClock();
      const store = closeAfter(t, await PostgresGrantStore.open(url, { clock: clock.now }));
      // Other replicas' connections, opened now: opening is async, and suites ask for them in passing.
      const peers = await Promise.all([1, 2, 3].map(async () => closeAfter(t, await PostgresGrantStore.open(url, { clock: clock.now }))));
      return {
        clock,
        store,
        peer: () => {
          const next = peers.shift();
          if (!next) throw new Error('the postgres driver opens three peers per test');
          return next;
        },
      };
    },
  },
];

/** Many processes take the same lease at once, round after round: exactly one may win each. */
async function oneWinnerPerRound(handles: Leases[], rounds = 50): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    const name = `work:${round}`;
    const won = await Promise.all(handles.map((h, i) => h.takeLease(name, `holder-${i}`, 10_000)));
    assert.equal(won.filter(Boolean).length, 1, `round ${round}: ${won.filter(Boolean).length} holders took one lease`);
  }
}

for (const driver of drivers) {
  test(`${driver.name} grants: a lease is one holder's until released or expired, renewed only by it`, async (t) => {
    const { store, peer, clock } = await driver.open(t);
    const other = peer();
    assert.equal(await store.takeLease('fetch:a', 'host-1/10/aa', 1_000), true);
    assert.equal(await other.takeLease('fetch:a', 'host-2/10/bb', 1_000), false, 'held by another, live');
    assert.equal(await store.takeLease('fetch:a', 'host-1/10/aa', 1_000), true, 'taking it again renews it');
    clock.advance(900);
    assert.equal(await store.renewLease('fetch:a', 'host-1/10/aa', 1_000), true);
    clock.advance(900);
    assert.equal(await other.takeLease('fetch:a', 'host-2/10/bb', 1_000), false, 'renewed: still live');
    // The same process id on another host, or after a restart, is another holder.
    assert.equal(await other.takeLease('fetch:a', 'host-1/10/cc', 1_000), false);
    await other.releaseLease('fetch:a', 'host-2/10/bb');
    assert.equal(await other.takeLease('fetch:a', 'host-2/10/bb', 1_000), false, 'a release by another holder does nothing');

    // The holder dies: it stops renewing, and the lease is free once expired.
    clock.advance(1_000);
    assert.equal(await other.takeLease('fetch:a', 'host-2/10/bb', 1_000), true, 'taken over once expired');
    assert.equal(await store.renewLease('fetch:a', 'host-1/10/aa', 1_000), false, 'the old holder learns it lost it');
    await store.releaseLease('fetch:a', 'host-1/10/aa');
    assert.equal(await store.takeLease('fetch:a', 'host-1/10/aa', 1_000), false, "the old holder's release did not free the new holder's lease");
    await other.releaseLease('fetch:a', 'host-2/10/bb');
    assert.equal(await store.takeLease('fetch:a', 'host-1/10/aa', 1_000), true, 'released: free at once');
    // Expired, but taken by no one: still its holder's to renew.
    clock.advance(5_000);
    assert.equal(await store.renewLease('fetch:a', 'host-1/10/aa', 1_000), true);
    assert.equal(await store.renewLease('never-taken', 'host-1/10/aa', 1_000), false);
  });

  test(`${driver.name} grants: of many processes taking one lease at once, exactly one wins`, async (t) => {
    const { store, peer } = await driver.open(t);
    await oneWinnerPerRound([store, peer(), peer(), peer()]);
  });

  test(`${driver.name} grants: a secret opens one image until spent or expired; a push grant is redeemed once, for its image`, async (t) => {
    const { store, peer, clock } = await driver.open(t);
    const other = peer();
    await store.addImageSecret('k1', 'fp-1', 1_000);
    await store.addImageSecret('k2', 'fp-2', 1_000);
    assert.equal(await other.imageSecretTarget('k1'), 'fp-1');
    await other.spendImageSecret('k1');
    assert.equal(await store.imageSecretTarget('k1'), undefined, 'spent, for every handle');
    clock.advance(1_000);
    assert.equal(await other.imageSecretTarget('k2'), undefined, 'expired');

    const grant = { fingerprint: 'fp-3', aliases: ['a'], public: true, properties: { os: 'x' } };
    await store.addPushGrant('p1', grant, 1_000);
    assert.equal(await other.redeemPushGrant('p1', 'fp-4'), undefined, 'for another image: refused, and kept');
    const redeemed = await Promise.all([store, other, peer()].map((h) => h.redeemPushGrant('p1', 'fp-3')));
    assert.deepEqual(redeemed.filter(Boolean), [grant], 'redeemed once, by one caller');
    await store.addPushGrant('p2', grant, 1_000);
    clock.advance(1_000);
    assert.equal(await other.redeemPushGrant('p2', 'fp-3'), undefined, 'expired');
  });

  test(`${driver.name} grants: operations are seen by every handle until they expire`, async (t) => {
    const { store, peer, clock } = await driver.open(t);
    const other = peer();
    await store.putOperation('op-1', { status: 'Running', n: 1 }, 1_000);
    await store.putOperation('op-2', { status: 'Success' }, 2_000);
    assert.deepEqual(await other.getOperation('op-1'), { status: 'Running', n: 1 });
    await other.putOperation('op-1', { status: 'Success', n: 2 }, 1_000);
    assert.deepEqual(await store.getOperation('op-1'), { status: 'Success', n: 2 });
    assert.equal(await store.countOperations(), 2);
    clock.advance(1_500);
    assert.equal(await other.getOperation('op-1'), undefined);
    assert.equal(await store.countOperations(), 1);
  });
}

/**
 * What a networked driver would be without a transaction or a compare-and-set: it reads the
 * lease, waits on the network, then writes. The suite must catch it.
 */
class YieldingLeases implements Leases {
  private readonly leases: Map<string, { holder: string; expiresAt: number }>;
  constructor(leases: Map<string, { holder: string; expiresAt: number }>) {
    this.leases = leases;
  }
  async takeLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const held = this.leases.get(name);
    await new Promise((resolve) => setImmediate(resolve)); // the round trip
    if (held && held.holder !== holder && held.expiresAt > Date.now()) return false;
    this.leases.set(name, { holder, expiresAt: Date.now() + ttlMs });
    return true;
  }
  async renewLease(): Promise<boolean> {
    return false;
  }
  async releaseLease(): Promise<void> {}
}

test('the suite catches a driver that reads, yields and writes: several holders win one lease', async () => {
  const shared = new Map<string, { holder: string; expiresAt: number }>();
  await assert.rejects(oneWinnerPerRound([0, 1, 2, 3].map(() => new YieldingLeases(shared))), /holders took one lease/);
});

test("postgres grants: one clock, the database server's: a host whose clock is an hour off neither takes a live lease nor loses its own", async (t) => {
  const url = await freshDatabase();
  const [a, b] = [closeAfter(t, await PostgresGrantStore.open(url)), closeAfter(t, await PostgresGrantStore.open(url))];
  const hostNow = Date.now;
  const skewed = (ms: number) => t.mock.method(Date, 'now', () => hostNow() + ms);

  assert.equal(await a.takeLease('jobs', 'host-a', 30_000), true);
  await a.addImageSecret('secret', 'fp', 30_000);
  // Host B's clock runs an hour ahead: by its clock A's lease and secret expired long ago.
  const ahead = skewed(3_600_000);
  assert.equal(await b.takeLease('jobs', 'host-b', 30_000), false, "a live lease is not taken by a host whose clock runs ahead");
  assert.equal(await b.imageSecretTarget('secret'), 'fp', 'a live secret is live on every host');
  ahead.mock.restore();

  // Host C's clock runs an hour behind: the lease it takes still expires 30 s from now, for everyone.
  assert.equal(await a.releaseLease('jobs', 'host-a'), undefined);
  const behind = skewed(-3_600_000);
  assert.equal(await b.takeLease('jobs', 'host-c', 30_000), true);
  behind.mock.restore();
  assert.equal(await a.takeLease('jobs', 'host-a', 30_000), false, "a lease taken by a host whose clock runs behind is not expired at once");
});
