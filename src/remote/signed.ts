/**
 * Documents of a server whose index is signed: each is fetched with its detached signature
 * (`PATH.gpg`, as images.linuxcontainers.org and wharf publish them) and believed only if the
 * signature is by one of the keys the operator gave for that server.
 */
import { AppError, ErrorCodes } from '../errors.ts';
import { verifyDetached } from '../signing/openpgp.ts';
import { documentOf, getJson, under, withoutSecrets, type FetchOptions } from './fetch.ts';

/** Checks `body`, the bytes of `path` on `base`, against its `.gpg`; throws upstream_corrupt. */
export async function checkSignature(base: string, path: string, body: Uint8Array, options: FetchOptions, publicKeys: string): Promise<void> {
  const url = under(base, `${path}.gpg`);
  const signature = await getJson(url, options);
  if (signature.status !== 200) {
    throw new AppError(ErrorCodes.upstreamCorrupt, `${withoutSecrets(url.href)}: HTTP ${signature.status}: the index of ${withoutSecrets(base)} must be signed`, {
      hint: 'The remote was added with --gpg-key: its index is used only with a valid signature.',
    });
  }
  await verifyDetached(body, signature.bytes, publicKeys, withoutSecrets(under(base, path).href));
}

/** A JSON document of `base`, once its signature verified. */
export async function signedDocument(base: string, path: string, options: FetchOptions, publicKeys: string): Promise<unknown> {
  const url = under(base, path);
  const answer = await getJson(url, options);
  const document = documentOf(url, answer);
  await checkSignature(base, path, answer.bytes, options, publicKeys);
  return document;
}
