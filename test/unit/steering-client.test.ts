/**
 * Who the client is behind trusted proxies: X-Forwarded-For is read from the nearest hop, entries
 * with a port are the address they carry, and an entry that is no address at all ends the walk,
 * so nothing written left of it (by anyone) is believed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Steering } from '../../src/steering/steer.ts';
import type { GeoIp } from '../../src/steering/geoip.ts';
import { MemoryMetaStore } from '../../src/meta/memory.ts';
import { silentLogger } from '../../src/log.ts';

const germany = '198.51.100.7';
const geoip: GeoIp = { locate: (address) => (address === germany ? { country: 'DE', continent: 'EU' } : {}) };
const up = { checkedAt: '2026-11-23T00:00:00.000Z', http: true, https: true, error: null, held: null };

async function steering(t: { after(fn: () => void): void }) {
  const meta = new MemoryMetaStore();
  await meta.putSite({ name: 'de', url: 'http://de.example.org', countries: ['DE'], continents: [], weight: 1 });
  await meta.recordSiteHealth([{ name: 'de', health: up }]);
  const steering = new Steering({ meta, geoip, trustedProxies: ['10.0.0.0/8', '::1'], log: silentLogger });
  await steering.start();
  t.after(() => steering.stop());
  return steering;
}

test('X-Forwarded-For entries with a port are the address they carry', async (t) => {
  const s = await steering(t);
  const from = (forwardedFor: string) => s.clientAddress({ peer: '10.0.0.1', forwardedFor, noGeoIp: undefined });
  assert.equal(from('198.51.100.7:4711'), germany);
  assert.equal(from('[2001:db8::5]:443'), '2001:db8::5');
  assert.equal(from('[2001:db8::5]'), '2001:db8::5');
  assert.equal(from(' 198.51.100.7 , 10.0.0.9:80'), germany, 'a trusted proxy written with its port is still skipped');
  // A spoofed entry left of the real client, the real one written with its port: the real one.
  assert.equal(from('203.0.113.5, 198.51.100.7:4711'), germany);
});

test('an X-Forwarded-For entry that is no address leaves the client unknown, whatever is left of it', async (t) => {
  const s = await steering(t);
  const from = (forwardedFor: string) => s.clientAddress({ peer: '10.0.0.1', forwardedFor, noGeoIp: undefined });
  for (const junk of ['unknown', 'garbage', '198.51.100.7:port', '[198.51.100.7]:80', '_hidden', '']) {
    assert.equal(from(`${germany}, ${junk}`), undefined, `"${junk}" after a spoofed address`);
    assert.equal(from(`${germany}, ${junk}, 10.0.0.9`), undefined, `"${junk}" behind a trusted hop`);
  }
  // The origin then serves the file itself: no steering by a location it cannot know.
  const big = { sha256: 'a'.repeat(64), size: 64 * 1024 * 1024 };
  assert.equal(s.redirect({ peer: '10.0.0.1', forwardedFor: `${germany}, unknown`, noGeoIp: undefined }, big, 'files/x.squashfs'), undefined);
  assert.equal(s.redirect({ peer: '10.0.0.1', forwardedFor: `${germany}:1234`, noGeoIp: undefined }, big, 'files/x.squashfs'), 'http://de.example.org/files/x.squashfs');
});
