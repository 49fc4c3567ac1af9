/** GeoIP steering rules: which site a download goes to, and who the client is behind a proxy. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { isAppError } from '../../src/errors.ts';
import { chooseSite, siteBase, type SiteRecord } from '../../src/domain/steering.ts';
import { Steering } from '../../src/steering/steer.ts';
import { openGeoIp } from '../../src/steering/geoip.ts';
import { MemoryMetaStore } from '../../src/meta/memory.ts';
import { silentLogger } from '../../src/log.ts';
import { buildGeoipDb } from '../fixtures/geoip.ts';
import { tempDir } from '../helpers/env.ts';

const sha = 'a'.repeat(64);
const up = { checkedAt: '2026-11-23T00:00:00.000Z', http: true, https: true, error: null, held: null };
const site = (name: string, over: Partial<SiteRecord> = {}): SiteRecord => ({ name, url: `https://${name}.example.org`, countries: [], continents: [], weight: 1, health: up, ...over });

test('a country site wins over a continent site; no site for the region means the origin serves', () => {
  const sites = [site('de', { countries: ['DE'] }), site('eu', { continents: ['EU'] })];
  assert.equal(chooseSite(sites, { country: 'DE', continent: 'EU' }, sha)?.site.name, 'de');
  assert.equal(chooseSite(sites, { country: 'FR', continent: 'EU' }, sha)?.site.name, 'eu');
  assert.equal(chooseSite(sites, { country: 'US', continent: 'NA' }, sha), undefined);
  assert.equal(chooseSite(sites, {}, sha), undefined);
});

test('unhealthy or unchecked sites are skipped; http is preferred, https used when http fails', () => {
  const sites = [site('down', { countries: ['DE'], health: { ...up, http: false, https: false } }), site('new', { countries: ['DE'], health: null }), site('eu', { continents: ['EU'] })];
  assert.equal(chooseSite(sites, { country: 'DE', continent: 'EU' }, sha)?.site.name, 'eu', 'a country with no healthy site falls back to its continent');
  const choice = chooseSite([site('tls', { countries: ['DE'], url: 'https://tls.example.org:8443/x', health: { ...up, http: false } })], { country: 'DE' }, sha);
  assert.equal(choice?.scheme, 'https');
  assert.equal(siteBase(choice!.site.url, choice!.scheme).href, 'https://tls.example.org:8443/x/');
  const plain = chooseSite([site('p', { countries: ['DE'], url: 'https://p.example.org' })], { country: 'DE' }, sha);
  assert.equal(siteBase(plain!.site.url, plain!.scheme).href, 'http://p.example.org/');
});

/** How many of `n` evenly spread draws each site gets. */
function shares(sites: SiteRecord[], n: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const name = chooseSite(sites, { country: 'DE' }, sha, { random: () => i / n })!.site.name;
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

test('the draw follows the weights; among sites of equal weight, one that holds the file is preferred', () => {
  const heavy = site('heavy', { countries: ['DE'], weight: 3 });
  const light = site('light', { countries: ['DE'], weight: 1 });
  assert.deepEqual(shares([heavy, light], 400), { heavy: 300, light: 100 });
  const holder = site('holder', { countries: ['DE'], health: { ...up, held: [sha] } });
  const empty = site('empty', { countries: ['DE'] });
  assert.deepEqual(shares([empty, holder], 400), { holder: 400 });
  assert.deepEqual(shares([empty, holder, heavy], 500), { holder: 200, heavy: 300 }, 'the weight-1 share goes to the holder; the heavy site keeps its own');
});

test('a site claiming to hold every file gets no more than its weight\'s share', () => {
  const liar = site('liar', { countries: ['DE'], weight: 1, health: { ...up, held: [sha, 'b'.repeat(64)] } });
  const honest = site('honest', { countries: ['DE'], weight: 10 });
  assert.deepEqual(shares([liar, honest], 1100), { liar: 100, honest: 1000 });
});

test('every process reads the sites again only once the store changed, not every 2 s', async (t) => {
  const meta = new MemoryMetaStore();
  await meta.putSite({ name: 'de', url: 'http://de.example.org', countries: ['DE'], continents: [], weight: 1 });
  await meta.recordSiteHealth([{ name: 'de', health: up }]);
  let reads = 0;
  const listSites = meta.listSites.bind(meta);
  meta.listSites = () => (reads++, listSites());
  t.mock.timers.enable({ apis: ['setInterval'] });
  const steering = new Steering({ meta, geoip: { locate: () => ({}) }, trustedProxies: [], log: silentLogger });
  await steering.start();
  t.after(() => steering.stop());
  const minutesPass = async (minutes: number) => {
    for (let i = 0; i < minutes * 30; i++) {
      t.mock.timers.tick(2_000);
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  await minutesPass(1);
  assert.equal(reads, 1, 'nothing changed: the sites were read once, at start');
  await meta.recordSiteHealth([{ name: 'de', health: { ...up, http: false, https: false } }]);
  await minutesPass(1);
  assert.equal(reads, 2);
  assert.deepEqual(steering.siteHealth(), [{ name: 'de', http: false, https: false, checked: true }], 'the change was read');
});

test('X-Forwarded-For is believed only from trusted proxies, and proxies in the chain are skipped', async (t) => {
  const dir = await tempDir(t);
  const db = join(dir, 'geo.mmdb');
  await buildGeoipDb(db, [{ cidr: '198.51.100.0/24', country: 'DE', continent: 'EU' }, { cidr: '203.0.113.0/24', country: 'FR' }, { cidr: '2001:db8::/32', country: 'JP', continent: 'AS' }]);
  const meta = new MemoryMetaStore();
  await meta.putSite({ name: 'de', url: 'http://de.example.org', countries: ['DE'], continents: [], weight: 1 });
  await meta.recordSiteHealth([{ name: 'de', health: up }]);
  const steering = new Steering({ meta, geoip: await openGeoIp(db), trustedProxies: ['10.0.0.0/8', '::1'], log: silentLogger });
  await steering.start();
  t.after(() => steering.stop());
  const from = (peer: string, forwardedFor?: string) => steering.clientAddress({ peer, forwardedFor, noGeoIp: undefined });
  assert.equal(from('192.0.2.1', '198.51.100.7'), '192.0.2.1', 'an untrusted peer cannot claim another address');
  assert.equal(from('::ffff:10.1.2.3', '198.51.100.7'), '198.51.100.7');
  assert.equal(from('10.1.2.3', '198.51.100.7, 10.9.9.9'), '198.51.100.7', 'trusted hops are skipped');
  assert.equal(from('::1', 'junk, 203.0.113.5'), '203.0.113.5');
  const big = { sha256: sha, size: 64 * 1024 * 1024 };
  const steer = (forwardedFor: string, noGeoIp?: string, file = big) => steering.redirect({ peer: '10.0.0.1', forwardedFor, noGeoIp }, file, 'files/x.squashfs');
  assert.equal(steer('198.51.100.7'), 'http://de.example.org/files/x.squashfs');
  assert.equal(steer('203.0.113.5'), undefined, 'FR: no site');
  assert.equal(steer('198.51.100.7', 'on'), undefined, 'mirrors are never redirected');
  assert.equal(steer('198.51.100.7', undefined, { sha256: sha, size: 1000 }), undefined, 'small files stay on the origin');

  // The flat layout of ip-location-db: the continent comes from the country.
  const flat = join(dir, 'flat.mmdb');
  await buildGeoipDb(flat, [{ cidr: '203.0.113.0/24', country: 'FR' }], 'flat');
  assert.deepEqual((await openGeoIp(flat)).locate('203.0.113.9'), { country: 'FR', continent: 'EU' });
  assert.deepEqual((await openGeoIp(db)).locate('2001:db8::5'), { country: 'JP', continent: 'AS' });
  assert.deepEqual((await openGeoIp(db)).locate('192.0.2.1'), {});
  assert.deepEqual((await openGeoIp(db)).locate('not an address'), {});

  // A file that is not an mmdb database is a setting error, not a crash later.
  const junk = join(dir, 'junk.mmdb');
  await writeFile(junk, 'this is not a database');
  await assert.rejects(openGeoIp(junk), (err: unknown) => isAppError(err, 'config'));
  await assert.rejects(openGeoIp(join(dir, 'missing.mmdb')), (err: unknown) => isAppError(err, 'config'));
});
