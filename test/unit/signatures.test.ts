/** Detached signatures as wharf checks another server's: a lie in the document or the signature is refused. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSigningKey, readSigningKey, verifyDetached } from '../../src/signing/openpgp.ts';
import { isAppError } from '../../src/errors.ts';

test('a detached signature verifies only the bytes it signed, by the key given; junk is refused cleanly', async () => {
  const signer = await readSigningKey(await generateSigningKey({ name: 'unit' }));
  const other = await readSigningKey(await generateSigningKey({ name: 'other' }));
  const body = Buffer.from('{"index": {}}');
  const signature = await signer.detached(body);
  await verifyDetached(body, signature, signer.publicKey, 'index.json');
  const refused = (err: unknown) => isAppError(err, 'upstream_corrupt') && /does not verify/.test((err as Error).message);
  await assert.rejects(verifyDetached(Buffer.from('{"index": {"x": 1}}'), signature, signer.publicKey, 'index.json'), refused);
  await assert.rejects(verifyDetached(body, signature, other.publicKey, 'index.json'), refused);
  await assert.rejects(verifyDetached(body, Buffer.from('<html>not found</html>'), signer.publicKey, 'index.json'), refused);
  await assert.rejects(verifyDetached(body, signature.subarray(0, 20), signer.publicKey, 'index.json'), refused);
  // The clear-signed form is not a detached signature of the JSON bytes.
  await assert.rejects(verifyDetached(body, await signer.clearsign(body.toString()), signer.publicKey, 'index.json'), refused);
});
