/**
 * The EventLog contract (src/meta/store.ts), run against every metadata driver: an image's
 * insert, edits and deletion log their events in the same write, by their actor, and the log's
 * order is the order of the writes, across handles, so that a reader that has seen up to N never
 * later finds an event at or below N. The last test proves the suite catches a log that numbers
 * events outside the write (as a PostgreSQL sequence would): a reader misses one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MetaStore } from '../../src/meta/store.ts';
import { MemoryMetaStore } from '../../src/meta/memory.ts';
import type { PipelineEvent } from '../../src/domain/pipeline.ts';
import { metaDrivers, rejectsWith, sha, splitImage } from './meta-drivers.ts';

const fp = (n: number) => sha('c', n);
const summary = (events: PipelineEvent[]) => events.map((e) => `${e.type} ${e.image.fingerprint.slice(-2)} ${e.channel ?? '-'} ${e.actor}`);

for (const driver of metaDrivers) {
  test(`${driver.name} events: each change logs its events in its write, by its actor, in order`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    assert.equal(await store.lastEvent(), 0);
    await store.insertImage(splitImage(fp(1), { public: false, channels: ['staging'], stage: { state: 'uploaded', at: new Date().toISOString() }, properties: { os: 'debian', release: 'bookworm', serial: '20261207_01:00' } }), [], {}, 'builder');
    const staged = (await other.getImage(fp(1)))!;
    assert.deepEqual(staged.stage?.state, 'uploaded', 'the stage is kept');
    await other.updateImage({ ...staged, stage: { state: 'testing', at: new Date().toISOString() } }, 'wharf');
    const testing = (await store.getImage(fp(1)))!;
    await store.updateImage({ ...testing, stage: { state: 'passed', at: new Date().toISOString() } }, 'wharf');
    const passed = (await other.getImage(fp(1)))!;
    await other.updateImage({ ...passed, public: true, channels: ['default', 'stable'], stage: { state: 'promoted', at: new Date().toISOString() } }, 'alice@host');
    await store.updateImage({ ...(await store.getImage(fp(1)))!, properties: { ...passed.properties, description: 'x' } });
    await store.updateImage({ ...(await store.getImage(fp(1)))!, channels: ['default'] }, 'bob@host');
    await store.deleteImages([fp(1)], 'retention');

    const events = await other.events(0, 100);
    assert.deepEqual(summary(events), [
      `image.uploaded 01 staging builder`,
      `test.passed 01 staging wharf`,
      `image.promoted 01 default alice@host`,
      `image.promoted 01 stable alice@host`,
      `image.demoted 01 stable bob@host`,
      `image.pruned 01 default retention`,
    ]);
    assert.deepEqual(events.map((e) => e.seq), [1, 2, 3, 4, 5, 6]);
    assert.equal(await store.lastEvent(), 6);
    assert.deepEqual(summary(await store.events(4, 1)), [`image.demoted 01 stable bob@host`], 'after and limit');
    const [uploaded] = events;
    assert.equal(uploaded!.image.product, 'debian:bookworm:amd64:default');
    assert.equal(uploaded!.image.version, '20261207_01:00');
    assert.deepEqual(uploaded!.image.files, { metadata: staged.metadata.sha256, rootfs: staged.rootfs!.sha256 });
    assert.deepEqual(events[5]!.image.channels, ['default'], 'a pruned image as it was');
    assert.ok(events.every((e) => !Number.isNaN(Date.parse(e.at))));
  });

  test(`${driver.name} events: a write that fails logs nothing`, async (t) => {
    const { store } = await driver.open(t);
    await store.insertImage(splitImage(fp(1)), []);
    await rejectsWith(store.insertImage(splitImage(fp(1)), []), 'conflict');
    const image = (await store.getImage(fp(1)))!;
    await store.updateImage({ ...image, stage: { state: 'failed', at: new Date().toISOString() } });
    await rejectsWith(store.updateImage({ ...image, channels: ['stable'] }), 'precondition_failed');
    await rejectsWith(store.deleteImages([fp(1), fp(2)]), 'not_found');
    assert.deepEqual(summary(await store.events(0, 100)), ['image.uploaded 01 default ', 'test.failed 01 default ']);
  });

  test(`${driver.name} events: concurrent writers on several handles; a reader following the log sees every event once, in order`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    assert.deepEqual(await followWhileWriting([store, other, peer()], other), Array.from({ length: 24 }, (_, i) => i + 1), 'every event once, in order, none skipped');
  });
}

/** Three writers insert 8 images each while a reader follows the log as webhooks do: the seqs it saw. */
async function followWhileWriting(writers: MetaStore[], reader: MetaStore): Promise<number[]> {
  const seen: number[] = [];
  let cursor = 0;
  const poll = async () => {
    for (const e of await reader.events(cursor, 50)) seen.push(e.seq), (cursor = e.seq);
  };
  let done = false;
  const follow = (async () => {
    while (!done) await poll(), await new Promise((r) => setImmediate(r));
    await poll();
  })();
  await Promise.all(writers.map(async (w, i) => {
    for (let n = 0; n < 8; n++) await w.insertImage(splitImage(fp(i * 100 + n + 1)), []);
  }));
  done = true;
  await follow;
  return seen;
}

/** A log numbered outside the write, as a PostgreSQL sequence numbers rows: the number is taken, the write commits later. */
class SequenceNumberedStore extends MemoryMetaStore {
  #taken = 0;
  readonly #seqOf = new Map<string, number>();
  override async insertImage(...args: Parameters<MetaStore['insertImage']>): Promise<void> {
    const seq = ++this.#taken;
    this.#seqOf.set(args[0].fingerprint, seq);
    if (seq % 2 === 1) await new Promise((r) => setTimeout(r, 3));
    return super.insertImage(...args);
  }
  override async events(after: number, limit: number) {
    const numbered = (await super.events(0, 1000)).map((e) => ({ ...e, seq: this.#seqOf.get(e.image.fingerprint)! }));
    return numbered.filter((e) => e.seq > after).sort((a, b) => a.seq - b.seq).slice(0, limit);
  }
}

test('the suite catches a log whose numbers are taken outside the write: a reader skips events', async () => {
  const racy = new SequenceNumberedStore();
  const seen = await followWhileWriting([racy, racy, racy], racy);
  assert.notDeepEqual(seen, Array.from({ length: 24 }, (_, i) => i + 1), 'the check above must fail for this log');
});
