/**
 * The RemoteStore and MirrorStore contracts (src/meta/store.ts), run against every metadata
 * driver: named records that `put` adds or replaces whole, listed by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MirrorRecord, RemoteRecord } from '../../src/meta/store.ts';
import { metaDrivers, rejectsWith } from './meta-drivers.ts';

const remote = (name: string, overrides: Partial<RemoteRecord> = {}): RemoteRecord => ({
  name,
  url: `https://${name}.example.org`,
  protocol: 'simplestreams',
  public: true,
  certificate: '',
  gpgKey: '',
  ...overrides,
});

const mirror = (name: string, overrides: Partial<MirrorRecord> = {}): MirrorRecord => ({
  name,
  remote: 'images',
  filters: { os: 'debian', architecture: 'amd64' },
  types: ['container', 'virtual-machine'],
  keep: 2,
  intervalSeconds: 21600,
  lazy: false,
  lastSync: null,
  lastError: null,
  ...overrides,
});

for (const driver of metaDrivers) {
  test(`${driver.name} remotes: put adds or replaces, list is by name, remove says when there is nothing`, async (t) => {
    const { store, peer } = await driver.open(t);
    const lxd = remote('lxd-box', { protocol: 'lxd', public: false, certificate: '-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n' });
    for (const r of [remote('upstream', { gpgKey: '-----BEGIN PGP PUBLIC KEY BLOCK-----\nK\n-----END PGP PUBLIC KEY BLOCK-----\n' }), lxd, remote('Air', { url: '/srv/tree' })]) await store.putRemote(r);
    assert.deepEqual(await store.listRemotes(), [remote('Air', { url: '/srv/tree' }), lxd, remote('upstream', { gpgKey: '-----BEGIN PGP PUBLIC KEY BLOCK-----\nK\n-----END PGP PUBLIC KEY BLOCK-----\n' })]);

    await store.putRemote(remote('upstream', { url: 'https://moved.example.org', public: false }));
    assert.deepEqual((await peer().listRemotes()).find((r) => r.name === 'upstream'), remote('upstream', { url: 'https://moved.example.org', public: false }));

    const listed = await store.listRemotes();
    listed[0]!.url = 'changed';
    assert.equal((await store.listRemotes())[0]!.url, '/srv/tree');

    await store.removeRemote('Air');
    await rejectsWith(store.removeRemote('Air'), 'not_found');
    assert.deepEqual((await store.listRemotes()).map((r) => r.name), ['lxd-box', 'upstream']);
  });

  test(`${driver.name} sites: put keeps the health a check recorded, health is written in one go for the sites still there`, async (t) => {
    const { store, peer } = await driver.open(t);
    const de = { name: 'de1', url: 'https://de1.example.org', countries: ['DE', 'AT'], continents: [], weight: 1 };
    const eu = { name: 'eu', url: 'http://eu.example.org:8080/images', countries: [], continents: ['EU'], weight: 3 };
    await store.putSite(eu);
    await store.putSite(de);
    assert.deepEqual(await peer().listSites(), [{ ...de, health: null }, { ...eu, health: null }]);
    const health = { checkedAt: '2026-11-23T10:00:00.000Z', http: true, https: false, error: 'https: connection refused', held: ['a'.repeat(64)] };
    await store.recordSiteHealth([{ name: 'de1', health }, { name: 'gone', health }]);
    await store.putSite({ ...de, weight: 5 });
    assert.deepEqual((await peer().listSites())[0], { ...de, weight: 5, health });
    const listed = await store.listSites();
    listed[0]!.countries.push('CH');
    listed[0]!.health!.held!.push('b');
    assert.deepEqual((await store.listSites())[0], { ...de, weight: 5, health });
    await store.removeSite('eu');
    await rejectsWith(store.removeSite('eu'), 'not_found');
    assert.deepEqual((await store.listSites()).map((s) => s.name), ['de1']);
  });

  test(`${driver.name} mirrors: put adds or replaces (a sync records its outcome), list is by name, remove says when there is nothing`, async (t) => {
    const { store, peer } = await driver.open(t);
    const edge = mirror('edge', { remote: 'upstream', filters: {}, types: [], keep: 1, intervalSeconds: 0, lazy: true });
    for (const m of [mirror('deb'), edge, mirror('alp', { filters: { os: 'alpine', release: '3.20' }, types: ['container'] })]) await store.putMirror(m);
    assert.deepEqual((await store.listMirrors()).map((m) => m.name), ['alp', 'deb', 'edge']);
    assert.deepEqual((await store.listMirrors())[2], edge);

    const synced = mirror('deb', { lastSync: '2026-11-22T09:00:00.000Z', lastError: 'upstream answered 503' });
    await store.putMirror(synced);
    assert.deepEqual((await peer().listMirrors()).find((m) => m.name === 'deb'), synced);
    await store.putMirror({ ...synced, lastError: null });
    assert.equal((await store.listMirrors()).find((m) => m.name === 'deb')!.lastError, null);

    const listed = await store.listMirrors();
    listed[0]!.filters.os = 'changed';
    listed[0]!.types.push('virtual-machine');
    assert.deepEqual((await store.listMirrors())[0], mirror('alp', { filters: { os: 'alpine', release: '3.20' }, types: ['container'] }));

    await store.removeMirror('edge');
    await rejectsWith(store.removeMirror('edge'), 'not_found');
    assert.deepEqual((await store.listMirrors()).map((m) => m.name), ['alp', 'deb']);
  });
}
