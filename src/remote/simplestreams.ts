/**
 * A simplestreams server (or a local tree of one) as a catalogue of images: its index, its
 * products files, and alias resolution the way the clients do it (newest serial first, squashfs
 * preferred, `ALIAS` and `ALIAS/ARCH` both registered, native architecture first).
 */
import { readIndex, readProducts, type RemoteFile, type RemoteImage } from '../domain/simplestreams-read.ts';
import { personalities } from '../domain/architecture.ts';
import type { ImageType } from '../domain/image.ts';
import { isFingerprintPrefix } from '../domain/fingerprint.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import type { IngestSource } from '../core/ingest.ts';
import { fetchJson, openUrl, under, withoutSecrets, type FetchOptions } from './fetch.ts';
import { signedDocument } from './signed.ts';
import { hostArchitecture } from '../domain/architecture.ts';

/**
 * The images a simplestreams server offers. With `signedBy` (armored public keys), its index and
 * products files are believed only with a valid detached signature (`X.json.gpg`) by one of them.
 */
export async function loadCatalogue(base: string, options: FetchOptions = {}, signedBy?: string): Promise<RemoteImage[]> {
  const read = (path: string) => (signedBy ? signedDocument(base, path, options, signedBy) : fetchJson(under(base, path), options));
  const index = await read('streams/v1/index.json');
  const images: RemoteImage[] = [];
  for (const path of readIndex(index)) images.push(...readProducts(await read(path)));
  return images;
}

const ftypeRank = ['squashfs', 'root.tar.xz', 'disk-kvm.img', 'uefi1.img', 'disk1.img'];
const rank = (i: RemoteImage) => (i.rootfs ? ftypeRank.indexOf(i.rootfs.ftype) : ftypeRank.length);

/**
 * IMAGE as a client resolves it on a simplestreams remote: an alias (optionally ALIAS/ARCH) of
 * the wanted type, else a unique fingerprint prefix.
 */
export function resolveRemoteImage(images: RemoteImage[], ref: string, options: { type: ImageType; architecture?: string }): RemoteImage {
  const native = options.architecture ?? hostArchitecture();
  const archOrder = [native, ...personalities(native)];
  const sorted = [...images].sort(
    (a, b) =>
      (a.properties.os ?? '').localeCompare(b.properties.os ?? '') ||
      (a.properties.release ?? '').localeCompare(b.properties.release ?? '') ||
      (a.properties.variant ?? '').localeCompare(b.properties.variant ?? '') ||
      b.version.localeCompare(a.version) ||
      rank(a) - rank(b),
  );
  const candidates = sorted.filter(
    (i) => i.type === options.type && i.aliases.some((a) => a === ref || `${a}/${i.properties.architecture}` === ref),
  );
  const explicitArch = candidates.filter((i) => i.aliases.some((a) => `${a}/${i.properties.architecture}` === ref));
  if (explicitArch.length) return explicitArch[0]!;
  for (const arch of archOrder) {
    const hit = candidates.find((i) => i.architecture === arch);
    if (hit) return hit;
  }
  const byPrefix = isFingerprintPrefix(ref) ? images.filter((i) => i.fingerprint.startsWith(ref)) : [];
  if (byPrefix.length === 1) return byPrefix[0]!;
  if (byPrefix.length > 1) throw new AppError(ErrorCodes.ambiguous, `More than one image matches "${ref}"`);
  if (candidates.length) throw new AppError(ErrorCodes.notFound, `"${ref}" has no ${options.type} image for ${archOrder.join(' or ')}`);
  throw new AppError(ErrorCodes.notFound, `The requested image "${ref}" couldn't be found${options.type === 'container' ? ' (use --vm for a virtual machine)' : ''}`);
}

/** A remote file as an import source: opened only when read, checked against its index entry. */
export function remoteSource(base: string, file: RemoteFile, options: FetchOptions = {}): IngestSource {
  const url = under(base, file.path);
  async function* chunks(): AsyncIterable<Uint8Array> {
    const res = await openUrl(url, options);
    if (res.statusCode !== 200) {
      res.resume();
      throw new AppError(ErrorCodes.unavailable, `${withoutSecrets(url.href)}: HTTP ${res.statusCode}`);
    }
    yield* res as AsyncIterable<Uint8Array>;
  }
  return { name: url.pathname.split('/').pop() || file.path, chunks: chunks(), expectedSha256: file.sha256, expectedSize: file.size };
}

