/**
 * The ViewStore contract (src/meta/store.ts), run against every metadata driver: private views and
 * their tokens, seen alike by every handle (process). A revocation happens once, by the store's
 * clock, however many handles race for it; the last test shows a driver that reads, yields and
 * writes fails this suite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MetaStore } from '../../src/meta/store.ts';
import type { View, ViewToken } from '../../src/domain/view.ts';
import type { TestResult } from '../../src/domain/test-hooks.ts';
import type { PushToken } from '../../src/domain/push-token.ts';
import { metaDrivers, rejectsWith, type OpenedMeta } from './meta-drivers.ts';

const view = (name: string, channel = 'stable', filters: Record<string, string> = {}): View => ({ name, channel, filters, createdAt: '2026-12-07T08:00:00.000Z' });
const token = (id: string, viewName: string, createdAt = '2026-12-07T09:00:00.000Z', expiresAt: string | null = null): ViewToken => ({
  id,
  view: viewName,
  hash: id.padEnd(64, '0'),
  description: `for ${id}`,
  createdAt,
  expiresAt,
  revokedAt: null,
});

/** Two handles revoking a view's tokens at once: each token is revoked once, and the counts say so. */
async function racingRevocations({ store, peer }: OpenedMeta): Promise<void> {
  const other = peer();
  await store.addView(view('race'));
  for (const id of ['aaaaaaaaaaa1', 'aaaaaaaaaaa2', 'aaaaaaaaaaa3']) await store.addViewToken(token(id, 'race'));
  const counts = await Promise.all([store.revokeViewTokens('race', undefined), other.revokeViewTokens('race', undefined)]);
  assert.equal(counts[0]! + counts[1]!, 3, `each token revoked once: ${counts}`);
  const times = (await other.listViewTokens()).map((t) => t.revokedAt);
  assert.ok(times.every((t) => t !== null));
}

for (const driver of metaDrivers) {
  test(`${driver.name} views: added, listed by name and removed on every handle; one per name`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    assert.deepEqual(await store.listViews(), []);
    await store.addView(view('zeta', 'daily'));
    await other.addView(view('acme', 'stable', { os: 'Acme', architecture: 'x86_64' }));
    await rejectsWith(store.addView(view('acme', 'daily')), 'conflict');
    assert.deepEqual(await store.listViews(), [view('acme', 'stable', { os: 'Acme', architecture: 'x86_64' }), view('zeta', 'daily')]);
    await other.removeView('zeta');
    await rejectsWith(store.removeView('zeta'), 'not_found');
    assert.deepEqual((await store.listViews()).map((v) => v.name), ['acme']);
  });

  test(`${driver.name} views: tokens belong to a view, are listed by view then age, and leave with it`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    await rejectsWith(store.addViewToken(token('0123456789ab', 'nowhere')), 'not_found');
    await store.addView(view('acme'));
    await store.addView(view('beta'));
    const later = token('000000000002', 'acme', '2026-12-07T10:00:00.000Z', '2027-03-07T10:00:00.000Z');
    await store.addViewToken(later);
    await other.addViewToken(token('ffffffffffff', 'acme'));
    await other.addViewToken(token('000000000003', 'beta'));
    await rejectsWith(store.addViewToken(token('ffffffffffff', 'beta')), 'conflict');
    assert.deepEqual(await other.listViewTokens(), [token('ffffffffffff', 'acme'), later, token('000000000003', 'beta')]);
    await store.removeView('acme');
    assert.deepEqual((await other.listViewTokens()).map((x) => x.id), ['000000000003']);
    // A view added again under the name starts with no token.
    await store.addView(view('acme'));
    assert.deepEqual((await store.listViewTokens()).map((x) => x.view), ['beta']);
  });

  test(`${driver.name} views: revoking one token or all of a view, by the store's clock; a revoked token keeps its time`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    await store.addView(view('acme'));
    await store.addView(view('beta'));
    for (const id of ['00000000000a', '00000000000b', '00000000000c']) await store.addViewToken(token(id, 'acme'));
    await store.addViewToken(token('00000000000d', 'beta'));
    await rejectsWith(store.revokeViewTokens('nowhere', undefined), 'not_found');
    await rejectsWith(store.revokeViewTokens('beta', '00000000000a'), 'not_found');
    const before = (await store.clock()).getTime();
    assert.equal(await other.revokeViewTokens('acme', '00000000000b'), 1);
    const first = (await store.listViewTokens()).find((x) => x.id === '00000000000b')!.revokedAt!;
    assert.ok(Date.parse(first) >= before - 1000 && Date.parse(first) <= Date.now() + 60_000, first);
    assert.equal(await store.revokeViewTokens('acme', '00000000000b'), 0, 'revoked once');
    assert.equal(await store.revokeViewTokens('acme', undefined), 2);
    const tokens = await other.listViewTokens();
    assert.equal(tokens.find((x) => x.id === '00000000000b')!.revokedAt, first, 'the first revocation keeps its time');
    assert.ok(tokens.filter((x) => x.view === 'acme').every((x) => x.revokedAt !== null));
    assert.equal(tokens.find((x) => x.view === 'beta')!.revokedAt, null, "another view's token is untouched");
  });

  test(`${driver.name} views: two handles revoking at once revoke each token once`, async (t) => {
    await racingRevocations(await driver.open(t));
  });
}

/** A driver without transactions: it reads which tokens are live, waits on the network, then writes. */
function yieldingViews(opened: OpenedMeta): OpenedMeta {
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  const naive = (store: MetaStore): MetaStore =>
    Object.assign(Object.create(store) as MetaStore, {
      async revokeViewTokens(name: string, id: string | undefined) {
        const live = (await store.listViewTokens()).filter((x) => x.view === name && (id === undefined || x.id === id) && x.revokedAt === null);
        await tick();
        for (const x of live) await store.revokeViewTokens(name, x.id);
        return live.length;
      },
    });
  return { store: naive(opened.store), peer: () => naive(opened.peer()) };
}

test('the suite catches a driver that reads, yields and writes: a token counted revoked twice', async (t) => {
  const memory = metaDrivers.find((d) => d.name === 'memory')!;
  await assert.rejects(racingRevocations(yieldingViews(await memory.open(t))));
});

// The TestResultStore contract rides along here: small, and written by the same CLI processes.
for (const driver of metaDrivers) {
  test(`${driver.name} test results: every attempt kept, an image's listed oldest first, on every handle`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const result = (fingerprint: string, hook: string, attempt: number, startedAt: string, outcome: TestResult['outcome'] = 'passed') => ({
      fingerprint,
      hook,
      attempt,
      outcome,
      exitCode: outcome === 'timed out' ? null : outcome === 'passed' ? 0 : 3,
      startedAt,
      durationMs: 1234,
      log: `log of ${hook} ${attempt}\n\u001b[31mred\u001b[0m`,
    });
    const a = 'a'.repeat(64);
    await store.addTestResult(result(a, 'boots', 2, '2026-12-07T10:00:05.000Z'));
    await other.addTestResult(result(a, 'boots', 1, '2026-12-07T10:00:01.000Z', 'failed'));
    await other.addTestResult(result(a, 'checks', 1, '2026-12-07T10:00:03.000Z', 'timed out'));
    await store.addTestResult(result('b'.repeat(64), 'boots', 1, '2026-12-07T10:00:00.000Z'));
    assert.deepEqual(await other.testResults(a), [
      result(a, 'boots', 1, '2026-12-07T10:00:01.000Z', 'failed'),
      result(a, 'checks', 1, '2026-12-07T10:00:03.000Z', 'timed out'),
      result(a, 'boots', 2, '2026-12-07T10:00:05.000Z'),
    ]);
    assert.deepEqual(await store.testResults('c'.repeat(64)), []);
  });
}

/** Two handles revoking one push token at once: exactly one of them revoked it. */
async function racingPushRevocations({ store, peer }: OpenedMeta, id: string): Promise<void> {
  const raced = await Promise.all([store.revokePushToken(id), peer().revokePushToken(id)]);
  assert.deepEqual(raced.sort(), [false, true], 'revoked once');
}

test('the suite catches a push-token store that reads, yields and writes: a token revoked twice', async (t) => {
  const memory = metaDrivers.find((d) => d.name === 'memory')!;
  const opened = await memory.open(t);
  const naive = (store: MetaStore): MetaStore =>
    Object.assign(Object.create(store) as MetaStore, {
      async revokePushToken(id: string) {
        const live = (await store.listPushTokens()).find((x) => x.id === id)?.revokedAt === null;
        await new Promise((resolve) => setImmediate(resolve));
        await store.revokePushToken(id);
        return live;
      },
    });
  await opened.store.addPushToken({ id: '0000000000aa', name: 'b', globs: ['*:*:*:*'], hash: 'cd'.repeat(32), createdAt: '2026-12-07T10:00:00.000Z', expiresAt: null, revokedAt: null });
  const other = naive(opened.peer());
  await assert.rejects(racingPushRevocations({ store: naive(opened.store), peer: () => other }, '0000000000aa'));
});

// The PushTokenStore contract (builders' tokens), alike on every driver and handle.
for (const driver of metaDrivers) {
  test(`${driver.name} push tokens: added, listed by age, revoked once whoever races for it`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    const token = (id: string, createdAt: string): PushToken => ({ id, name: `builder-${id}`, globs: ['debian:*:amd64:*'], hash: 'cd'.repeat(32), createdAt, expiresAt: null, revokedAt: null });
    await store.addPushToken(token('00000000000b', '2026-12-07T10:00:00.000Z'));
    await other.addPushToken(token('00000000000a', '2026-12-07T11:00:00.000Z'));
    await rejectsWith(store.addPushToken(token('00000000000a', '2026-12-07T12:00:00.000Z')), 'conflict');
    assert.deepEqual((await other.listPushTokens()).map((x) => x.id), ['00000000000b', '00000000000a']);
    assert.deepEqual((await other.listPushTokens())[0], token('00000000000b', '2026-12-07T10:00:00.000Z'));
    await racingPushRevocations({ store, peer: () => other }, '00000000000a');
    assert.notEqual((await store.listPushTokens()).find((x) => x.id === '00000000000a')!.revokedAt, null);
    await rejectsWith(store.revokePushToken('0000000000ff'), 'not_found');
  });
}
