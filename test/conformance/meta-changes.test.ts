/**
 * The ChangeFeed contract (src/meta/store.ts), run against every metadata driver: the running
 * server's publisher re-renders the index when the version changes, so every committed change, by
 * this handle or by another process, must move it, and reading must not. (A write that changes
 * nothing need not move it: SQLite's data_version does not see an empty commit.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MetaStore } from '../../src/meta/store.ts';
import { alias, delta, fromNow, metaDrivers, sha, splitImage } from './meta-drivers.ts';

const fp = (n: number) => sha('c', n);

/** Every kind of write, in an order in which each one succeeds. */
const writes: [string, (s: MetaStore) => Promise<unknown>][] = [
  ['insertImage', (s) => s.insertImage(splitImage(fp(1), { public: false }), [])],
  ['insertImage (second)', (s) => s.insertImage(splitImage(fp(2)), [])],
  ['publishImages', (s) => s.publishImages([fp(1)])],
  ['updateImage', async (s) => s.updateImage({ ...(await s.getImage(fp(1)))!, properties: { a: 'b' } })],
  ['addDeltas', (s) => s.addDeltas(fp(1), [delta(sha('d', 1), 'v0')])],
  ['createAlias', (s) => s.createAlias(alias('x', fp(1)))],
  ['renameAlias', (s) => s.renameAlias('x', 'y')],
  ['moveAliases', (s) => s.moveAliases(fp(1), fp(2))],
  ['deleteAlias', (s) => s.deleteAlias('y')],
  ['deleteImage', (s) => s.deleteImages([fp(1)])],
  ['claimBlobs', (s) => s.claimBlobs('c', [sha('e', 1)], fromNow(60_000))],
  ['releaseClaim', (s) => s.releaseClaim('c')],
  ['beginCollect', (s) => s.beginCollect(sha('e', 1), fromNow(1000), new Date().toISOString())],
  ['finishCollect', (s) => s.finishCollect(sha('e', 1))],
  ['addCertificate', (s) => s.addCertificate({ fingerprint: sha('b', 1), name: 'n', certificate: 'PEM', createdAt: fromNow(0), channels: null })],
  ['removeCertificate', (s) => s.removeCertificate(sha('b', 1))],
  ['addToken', (s) => s.addToken({ secret: 's', name: 'n', createdAt: fromNow(0), expiresAt: fromNow(60_000) })],
  ['consumeToken', (s) => s.consumeToken('s', fromNow(0))],
  ['putRemote', (s) => s.putRemote({ name: 'r', url: 'https://r.example', protocol: 'lxd', public: false, certificate: '', gpgKey: '' })],
  ['removeRemote', (s) => s.removeRemote('r')],
  ['putMirror', (s) => s.putMirror({ name: 'm', remote: 'r', filters: {}, types: [], keep: 1, intervalSeconds: 0, lazy: false, lastSync: null, lastError: null })],
  ['removeMirror', (s) => s.removeMirror('m')],
  // A revoked token must close its view on every serving process: each of these is a change.
  ['addView', (s) => s.addView({ name: 'v', channel: 'stable', filters: {}, createdAt: fromNow(0) })],
  ['addViewToken', (s) => s.addViewToken({ id: '0123456789ab', view: 'v', hash: 'ab'.repeat(32), description: '', createdAt: fromNow(0), expiresAt: null, revokedAt: null })],
  ['revokeViewTokens', (s) => s.revokeViewTokens('v', undefined)],
  ['removeView', (s) => s.removeView('v')],
];

for (const driver of metaDrivers) {
  test(`${driver.name} changes: every change moves the version, for the handle that wrote and every other; reads do not`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    for (const [index, [name, write]] of writes.entries()) {
      // The two handles take turns: changes made by "the CLI" and by "the server" alike.
      const [writer, reader] = index % 2 === 0 ? [store, other] : [other, store];
      const [mine, theirs] = [await writer.changeVersion(), await reader.changeVersion()];
      await Promise.all([writer.listImages(), writer.listAliases(), writer.getBlob(sha('e', 1)), writer.listRemotes(), reader.listMirrors()]);
      assert.equal(await writer.changeVersion(), mine, `${name}: reading changed the version`);
      assert.equal(await reader.changeVersion(), theirs, `${name}: reading changed the version`);
      await write(writer);
      assert.notEqual(await writer.changeVersion(), mine, `${name}: the writer's version did not change`);
      assert.notEqual(await reader.changeVersion(), theirs, `${name}: the other handle's version did not change`);
    }
  });
}

// Drivers that announce their changes (PostgreSQL's LISTEN/NOTIFY); the others are polled.
for (const driver of metaDrivers.filter((d) => d.announcesChanges)) {
  test(`${driver.name} changes: a watcher hears every write of every handle, soon after it commits`, async (t) => {
    const { store, peer } = await driver.open(t);
    const other = peer();
    let heard = 0;
    const stop = store.watch!(() => void heard++);
    t.after(stop);
    /** Whether the watcher heard more than `before` within 2 s. */
    const heardSince = async (before: number) => {
      const deadline = Date.now() + 2_000;
      while (heard === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      return heard > before;
    };
    assert.ok(await heardSince(0), 'told once it listens (anything may have happened before)');
    for (const [name, write] of writes.slice(0, 6)) {
      const started = Date.now();
      const before = heard;
      await write(other);
      assert.ok(await heardSince(before), `${name} on another handle was announced`);
      assert.ok(Date.now() - started < 1_000, `${name}: heard after ${Date.now() - started} ms`);
    }
    await store.getImage(fp(2));
    await new Promise((r) => setTimeout(r, 200));
    const quiet = heard;
    await other.listImages();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(heard, quiet, 'reads are not announced');
  });
}
