/**
 * The TrustStore contract (src/meta/store.ts), run against every metadata driver: trusted
 * certificates, and join tokens that work once, whichever process presents them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TrustedCertificate, TrustToken } from '../../src/meta/store.ts';
import { fromNow, metaDrivers, rejectsWith, sha } from './meta-drivers.ts';

const cert = (n: number, name: string): TrustedCertificate => ({
  fingerprint: sha('b', n),
  name,
  certificate: `-----BEGIN CERTIFICATE-----\n${n}\n-----END CERTIFICATE-----\n`,
  createdAt: '2026-11-22T08:00:00.000Z',
  channels: null,
});

const token = (secret: string, expiresAt: string): TrustToken => ({ secret, name: `client-${secret}`, createdAt: '2026-11-22T08:00:00.000Z', expiresAt });

for (const driver of metaDrivers) {
  test(`${driver.name} trust: certificates round-trip, listed by name then fingerprint; one per fingerprint`, async (t) => {
    const { store } = await driver.open(t);
    // One restricted to channels: the list comes back as given.
    const certs = [cert(3, 'bob'), cert(2, 'alice'), cert(1, 'bob'), cert(4, 'Zed'), { ...cert(5, 'élodie'), channels: ['daily', 'stable'] }];
    for (const c of certs) await store.addCertificate(c);
    assert.deepEqual((await store.listCertificates()).map((c) => [c.name, c.fingerprint]), [
      ['Zed', sha('b', 4)],
      ['alice', sha('b', 2)],
      ['bob', sha('b', 1)],
      ['bob', sha('b', 3)],
      ['élodie', sha('b', 5)],
    ]);
    assert.deepEqual(await store.getCertificate(sha('b', 2)), cert(2, 'alice'));
    assert.deepEqual((await store.getCertificate(sha('b', 5)))!.channels, ['daily', 'stable']);
    assert.equal(await store.getCertificate(sha('b', 9)), undefined);

    await rejectsWith(store.addCertificate({ ...cert(2, 'mallory') }), 'conflict');
    assert.equal((await store.getCertificate(sha('b', 2)))!.name, 'alice');

    await store.removeCertificate(sha('b', 2));
    assert.equal(await store.getCertificate(sha('b', 2)), undefined);
    await rejectsWith(store.removeCertificate(sha('b', 2)), 'not_found');
    assert.equal((await store.listCertificates()).length, 4);
  });

  test(`${driver.name} trust: a token works once, and not after it expired`, async (t) => {
    const { store } = await driver.open(t);
    const s1 = token('s1', fromNow(60_000));
    await store.addToken(s1);
    await store.addToken(token('s2', fromNow(60_000)));
    await store.addToken(token('old', fromNow(-1000)));
    await rejectsWith(store.addToken(token('s1', fromNow(120_000))), 'conflict');

    const at = new Date().toISOString();
    assert.deepEqual(await store.consumeToken('s1', at), s1);
    assert.equal(await store.consumeToken('s1', at), undefined);
    assert.equal(await store.consumeToken('unknown', at), undefined);
    assert.equal(await store.consumeToken('old', at), undefined);
    // Expired at `now` exactly, and dropped for good once seen expired.
    assert.equal(await store.consumeToken('s2', fromNow(60_000 + 1000)), undefined);
    assert.equal(await store.consumeToken('s2', at), undefined);
  });

  test(`${driver.name} trust: two processes presenting one token: exactly one gets it`, async (t) => {
    const { store, peer } = await driver.open(t);
    const handles = [store, peer(), peer()];
    await store.addToken(token('shared', fromNow(60_000)));
    const at = new Date().toISOString();
    const got = await Promise.all(handles.map((h) => h.consumeToken('shared', at)));
    assert.equal(got.filter((g) => g !== undefined).length, 1);
    // What one process trusts, the others see.
    await handles[1]!.addCertificate(cert(1, 'joined'));
    assert.deepEqual(await handles[2]!.getCertificate(sha('b', 1)), cert(1, 'joined'));
  });
}
