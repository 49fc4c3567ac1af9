/** IMAGE on the command line or in a URL: an alias, or a unique fingerprint prefix. */
import { AppError, ErrorCodes, notFound } from '../errors.ts';
import type { Image } from '../domain/image.ts';
import { isFingerprintPrefix } from '../domain/fingerprint.ts';
import type { ImageCatalog } from '../meta/store.ts';

export async function resolveImage(store: { meta: ImageCatalog }, ref: string): Promise<Image> {
  // Refs arrive from JSON bodies too (an alias target): anything but a string names nothing.
  if (typeof ref !== 'string') throw new AppError(ErrorCodes.invalidArgument, `Invalid image reference ${JSON.stringify(ref)}: not a string`);
  const alias = await store.meta.getAlias(ref);
  if (alias) {
    const image = await store.meta.getImage(alias.fingerprint);
    if (image) return image;
  }
  return resolveFingerprint(store, ref);
}

export async function resolveFingerprint(store: { meta: ImageCatalog }, prefix: string): Promise<Image> {
  const normalized = prefix.toLowerCase();
  if (!isFingerprintPrefix(normalized)) throw notFound(`Image "${prefix}" not found`);
  const matches = await store.meta.findImages(normalized);
  if (matches.length === 0) throw notFound(`Image "${prefix}" not found`);
  if (matches.length > 1) {
    throw new AppError(ErrorCodes.ambiguous, `More than one image matches "${prefix}"`, {
      hint: `Candidates:\n${matches.map((m) => `  ${m.fingerprint}`).join('\n')}`,
    });
  }
  return matches[0]!;
}
