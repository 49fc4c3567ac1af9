/**
 * OpenPGP for published indexes (openpgp.js, loaded only when a key is in use): a server's
 * signing key, detached and clear-text signatures as images.linuxcontainers.org publishes them,
 * and checking another server's signatures against the key an operator gave for it.
 *
 * Keys are EdDSA (ed25519, the "legacy" v4 form): what GnuPG 2.2, in every supported Debian, verifies.
 */
import { AppError, ErrorCodes } from '../errors.ts';

const openpgp = () => import('openpgp');

export interface Signer {
  /** The key's fingerprint, uppercase hex, as gpg prints it. */
  fingerprint: string;
  /** The armored public key, for `key export`. */
  publicKey: string;
  /** A binary detached signature of `data` (a `.gpg` file beside the document). */
  detached(data: Uint8Array): Promise<Buffer>;
  /** `text` clear-signed (a `.sjson` document). */
  clearsign(text: string): Promise<Buffer>;
}

/** A new signing key, armored, unprotected (the server signs unattended): keep the file private. */
export async function generateSigningKey(identity: { name: string; email?: string | undefined }): Promise<string> {
  const { generateKey } = await openpgp();
  const { privateKey } = await generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name: identity.name, ...(identity.email ? { email: identity.email } : {}) }],
    format: 'armored',
  });
  return privateKey;
}

/** The signer of an armored private key; refuses public keys and passphrase-protected ones. */
export async function readSigningKey(armored: string): Promise<Signer> {
  const pgp = await openpgp();
  let key;
  try {
    key = await pgp.readPrivateKey({ armoredKey: armored });
  } catch (err) {
    throw new AppError(ErrorCodes.invalidArgument, `Not an OpenPGP private key: ${(err as Error).message}`, {
      hint: 'Export it with gpg --armor --export-secret-keys KEYID (without a passphrase: the server signs unattended).',
    });
  }
  if (!key.isDecrypted()) throw new AppError(ErrorCodes.invalidArgument, 'The private key is protected by a passphrase', { hint: 'Remove it (gpg --edit-key KEYID passwd) before importing: the server signs unattended.' });
  await key.getSigningKey().catch((err: unknown) => {
    throw new AppError(ErrorCodes.invalidArgument, `The key cannot sign: ${(err as Error).message}`);
  });
  return {
    fingerprint: key.getFingerprint().toUpperCase(),
    publicKey: key.toPublic().armor(),
    detached: async (data) => Buffer.from(await pgp.sign({ message: await pgp.createMessage({ binary: data }), signingKeys: key, detached: true, format: 'binary' })),
    clearsign: async (text) => Buffer.from(await pgp.sign({ message: await pgp.createCleartextMessage({ text }), signingKeys: key })),
  };
}

/**
 * Every key of a key file. openpgp.js reads one armored block per call, and a file may hold
 * several (`cat key1.asc key2.asc`, as GnuPG accepts it): each block is read, none is dropped.
 */
async function readKeyFile(armored: string) {
  const { readKeys } = await openpgp();
  const blocks = armored.match(armoredKeyBlock) ?? [armored];
  return (await Promise.all(blocks.map((block) => readKeys({ armoredKeys: block })))).flat();
}

const armoredKeyBlock = /-----BEGIN PGP (PUBLIC|PRIVATE) KEY BLOCK-----[\s\S]*?-----END PGP \1 KEY BLOCK-----/g;

/** Checks that `armored` holds public keys (an operator's `--gpg-key`); returns their fingerprints. */
export async function readPublicKeys(armored: string): Promise<string[]> {
  try {
    return (await readKeyFile(armored)).map((k) => k.getFingerprint().toUpperCase());
  } catch (err) {
    throw new AppError(ErrorCodes.invalidArgument, `Not an OpenPGP public key: ${(err as Error).message}`, { hint: 'Export it with gpg --armor --export KEYID.' });
  }
}

/**
 * How far in the future a signature's creation time may be: the signing server's clock may run
 * a little ahead of ours. Only that check moves (openpgp.js judges a key's expiry and revocation
 * at the signature's own creation time, whatever `date` is); a signature with an expiry is taken
 * as expired this much early.
 */
export const signatureClockSkewMs = 5 * 60_000;

/**
 * Checks a detached signature (binary or armored) of `data` by one of `publicKeys` (armored);
 * `what` names the document in the error. A missing, malformed or wrong signature is upstream_corrupt.
 */
export async function verifyDetached(data: Uint8Array, signature: Uint8Array, publicKeys: string, what: string): Promise<void> {
  const pgp = await openpgp();
  const refuse = (why: string) => new AppError(ErrorCodes.upstreamCorrupt, `The signature of ${what} does not verify: ${why}`);
  const keys = await readKeyFile(publicKeys);
  let parsed;
  try {
    const text = Buffer.from(signature).toString('latin1');
    parsed = text.includes('-----BEGIN PGP SIGNATURE-----') ? await pgp.readSignature({ armoredSignature: text }) : await pgp.readSignature({ binarySignature: signature });
  } catch (err) {
    throw refuse(`not an OpenPGP signature (${(err as Error).message})`);
  }
  const date = new Date(Date.now() + signatureClockSkewMs);
  const { signatures } = await pgp.verify({ message: await pgp.createMessage({ binary: data }), signature: parsed, verificationKeys: keys, expectSigned: false, date });
  if (signatures.length === 0) throw refuse('no signature');
  const outcomes = await Promise.allSettled(signatures.map((s) => s.verified));
  const failure = outcomes.find((o) => o.status === 'rejected');
  if (outcomes.some((o) => o.status === 'fulfilled')) return;
  throw refuse((failure as PromiseRejectedResult | undefined)?.reason?.message ?? 'unknown');
}
