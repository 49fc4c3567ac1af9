/** Holding a lease while work runs (core/lease.ts): renewed while alive, lost when taken over, free when released. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { holdLease, whileLeading } from '../../src/core/lease.ts';
import { MemoryGrantStore } from '../../src/meta/grants-memory.ts';

test('a held lease is renewed while its holder lives, so no one takes it past its time to live', async () => {
  const grants = new MemoryGrantStore();
  const held = await holdLease(grants, 'jobs', { holder: 'a', ttlMs: 150 });
  assert.ok(held);
  assert.equal(await holdLease(grants, 'jobs', { holder: 'b', ttlMs: 150 }), undefined);
  await sleep(500);
  assert.equal(await grants.takeLease('jobs', 'b', 150), false, 'still renewed after three times its time to live');
  assert.equal(held.lost.aborted, false);
  await held.release();
  assert.equal(await grants.takeLease('jobs', 'b', 150), true, 'released: free at once');
});

test('a holder whose lease was taken over learns it lost it', async () => {
  let now = 0;
  const grants = new MemoryGrantStore({ clock: () => now });
  const held = await holdLease(grants, 'jobs', { holder: 'a', ttlMs: 90 });
  assert.ok(held);
  // It stalled past its time to live (a long pause) and another holder took the lease.
  now += 1_000;
  assert.equal(await grants.takeLease('jobs', 'b', 90), true);
  await sleep(100);
  assert.equal(held.lost.aborted, true);
  await held.release();
  assert.equal(await grants.takeLease('jobs', 'c', 90), false, "the loser's release leaves the new holder's lease alone");
});

/** A handle on the store whose calls never return once severed: a process that died or froze. */
function severable(grants: MemoryGrantStore) {
  let severed = false;
  const hang = new Promise<never>(() => {});
  const handle = {
    takeLease: (n: string, h: string, ttl: number) => (severed ? hang : grants.takeLease(n, h, ttl)),
    renewLease: (n: string, h: string, ttl: number) => (severed ? hang : grants.renewLease(n, h, ttl)),
    releaseLease: (n: string, h: string) => (severed ? hang : grants.releaseLease(n, h)),
  };
  return { handle, sever: () => void (severed = true) };
}

test('the jobs run in one process of those sharing the store, and move to another when it dies', async () => {
  const grants = new MemoryGrantStore();
  const running = new Set<string>();
  const lead = (holder: string, leases: Parameters<typeof whileLeading>[0]) =>
    whileLeading(leases, 'jobs', () => {
      running.add(holder);
      return { stop: async () => void running.delete(holder) };
    }, { holder, ttlMs: 300 });
  const first = severable(grants);
  const a = lead('a', first.handle);
  await sleep(50);
  const b = lead('b', grants);
  await sleep(700);
  assert.deepEqual([...running], ['a'], 'one process runs them, past several times the time to live');

  // a dies: it renews no more (nor releases); b takes over once the lease expired.
  first.sever();
  const died = Date.now();
  while (!running.has('b')) {
    assert.ok(Date.now() - died < 2_000, 'b never took the jobs over');
    await sleep(20);
  }
  assert.ok(Date.now() - died >= 100, 'not before the lease expired');
  await b.stop();
  assert.equal(running.has('b'), false, 'stopping stops the work');
  assert.equal(await grants.takeLease('jobs', 'c', 300), true, 'and gives the lease up');
  void a; // a hangs on its severed handle forever, as a dead process would
});
