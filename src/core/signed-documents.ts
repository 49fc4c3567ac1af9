/**
 * A document as it is served with its signatures, as images.linuxcontainers.org publishes them.
 */
import type { IndexDocument } from '../domain/simplestreams.ts';
import { renderBytes, renderJson, type RenderedDocument, type Renderings } from '../web/rendered.ts';

/** Signatures made during one rendering, by the ETag (a sha256 prefix) of the bytes signed. */
export type SignatureCache = Map<string, Promise<[Buffer, Buffer]>>;

/** What signs the index (core knows only this shape; signing/openpgp.ts provides it). */
export interface IndexSigner {
  detached(data: Uint8Array): Promise<Buffer>;
  clearsign(text: string): Promise<Buffer>;
}

/**
 * A document and its signatures, as images.linuxcontainers.org publishes them: `X.json.gpg` (a
 * detached signature of exactly the bytes served as X.json) and `X.sjson` (the same document
 * clear-signed; indented, as GnuPG refuses clear-signed lines longer than 19,995 bytes).
 */
export async function signedDocuments(path: string, value: unknown, signer: IndexSigner | undefined, signed: SignatureCache, seen: Renderings, clearsigned = value): Promise<[string, RenderedDocument][]> {
  const json = renderJson(value, seen);
  if (!signer) return [[path, json]];
  // Client views often render the very same bytes: those are signed once per rendering.
  let signatures = signed.get(json.etag);
  if (!signatures) {
    signatures = Promise.all([signer.detached(json.body), signer.clearsign(JSON.stringify(clearsigned, null, 2) + '\n')]);
    signed.set(json.etag, signatures);
  }
  const [detached, clear] = await signatures;
  return [
    [path, json],
    [`${path}.gpg`, renderBytes(detached, 'application/pgp-signature', seen)],
    [path.replace(/\.json$/, '.sjson'), renderBytes(clear, 'text/plain; charset=utf-8', seen)],
  ];
}

/**
 * What index.sjson signs: the index with every product path naming the signed document
 * (images.sjson), as Canonical's simplestreams tools sign and follow them (sstream-query verifies
 * a whole stream from it); index.json, which LXD and Incus read, names images.json.
 */
export function signedIndexOf(index: IndexDocument): IndexDocument {
  return { ...index, index: Object.fromEntries(Object.entries(index.index).map(([k, v]) => [k, { ...v, path: v.path.replace(/\.json$/, '.sjson') }])) };
}
