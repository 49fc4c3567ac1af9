/**
 * Which signatures of another server wharf believes: one by any key of the key file the operator
 * gave (however many armored blocks it holds), made by a clock a little ahead of ours, by a key
 * that was valid when it signed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as openpgp from 'openpgp';
import { generateSigningKey, readPublicKeys, readSigningKey, signatureClockSkewMs, verifyDetached } from '../../src/signing/openpgp.ts';
import { isAppError } from '../../src/errors.ts';

const body = Buffer.from('{"index": {}}');
const refused = (why: RegExp) => (err: unknown) => isAppError(err, 'upstream_corrupt') && /does not verify/.test((err as Error).message) && why.test((err as Error).message);

/** A detached signature whose creation time says `date`, as a server with that clock makes it. */
async function signedAt(privateKey: openpgp.PrivateKey, date: Date): Promise<Uint8Array> {
  return openpgp.sign({ message: await openpgp.createMessage({ binary: body }), signingKeys: privateKey, detached: true, format: 'binary', date });
}

test('a key file of several armored blocks (cat a.asc b.asc): every key is read, and a signature by the second verifies', async () => {
  const [first, second, stranger] = await Promise.all(['first', 'second', 'stranger'].map(async (name) => readSigningKey(await generateSigningKey({ name }))));
  const keyFile = `${first!.publicKey}\n${second!.publicKey}`;
  assert.equal(keyFile.match(/-----BEGIN PGP PUBLIC KEY BLOCK-----/g)?.length, 2);
  assert.deepEqual(await readPublicKeys(keyFile), [first!.fingerprint, second!.fingerprint]);
  await verifyDetached(body, await second!.detached(body), keyFile, 'index.json');
  await verifyDetached(body, await first!.detached(body), keyFile, 'index.json');
  await assert.rejects(verifyDetached(body, await stranger!.detached(body), keyFile, 'index.json'), refused(/signing key/));
});

test('a signature from a clock a few seconds or a minute ahead verifies; one from further in the future than the allowed skew does not', async () => {
  const key = await openpgp.readPrivateKey({ armoredKey: await generateSigningKey({ name: 'ahead' }) });
  const publicKey = key.toPublic().armor();
  for (const aheadMs of [2_000, 60_000]) {
    await verifyDetached(body, await signedAt(key, new Date(Date.now() + aheadMs)), publicKey, 'index.json');
  }
  for (const aheadMs of [signatureClockSkewMs + 60_000, 3 * 3600_000]) {
    await assert.rejects(verifyDetached(body, await signedAt(key, new Date(Date.now() + aheadMs)), publicKey, 'index.json'), refused(/in the future/), `${aheadMs} ms ahead`);
  }
});

test('a signature made after its key expired is refused, also one whose time is within the allowed skew', async () => {
  // A key made two hours ago; the same key re-issued with an expiry of one hour, which is past.
  const created = new Date(Date.now() - 2 * 3600_000);
  const userIDs = [{ name: 'expired' }];
  const { privateKey } = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs, date: created, format: 'object' });
  const expired = await openpgp.reformatKey({ privateKey, userIDs, keyExpirationTime: 3600, date: new Date(created.getTime() + 1000), format: 'object' });
  for (const signed of [new Date(), new Date(Date.now() + 2_000)]) {
    const signature = await signedAt(privateKey, signed);
    await verifyDetached(body, signature, privateKey.toPublic().armor(), 'index.json');
    await assert.rejects(verifyDetached(body, signature, expired.publicKey.armor(), 'index.json'), refused(/expired/));
  }
});
