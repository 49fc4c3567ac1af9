/** Hand-made aliases: one name, one image. Product aliases are derived (domain/product.ts). */
import { AppError, ErrorCodes } from '../errors.ts';
import type { Alias } from '../domain/image.ts';
import { isSha256 } from '../domain/fingerprint.ts';
import type { ImageCatalog } from '../meta/store.ts';
import { resolveImage } from './resolve.ts';

export function validateAliasName(name: unknown): asserts name is string {
  // Names arrive from JSON bodies too: anything but a string is a bad request, not a crash.
  if (typeof name !== 'string') throw new AppError(ErrorCodes.invalidArgument, `Invalid alias name ${JSON.stringify(name)}: not a string`);
  // Simplestreams joins aliases with "," and clients split on it; LXD forbids these too.
  if (!name || /[\s,:]/.test(name) || name.startsWith('/') || name.endsWith('/') || name.length > 255) {
    throw new AppError(ErrorCodes.invalidArgument, `Invalid alias name "${name}"`, {
      hint: 'Aliases may not be empty or contain spaces, commas or colons, nor start or end with "/".',
    });
  }
  if (isSha256(name)) throw new AppError(ErrorCodes.invalidArgument, `Alias "${name}" looks like a fingerprint`);
}

/** `image alias list`: the aliases whose name contains, or whose image's fingerprint starts with, every filter. */
export async function listAliases(store: { meta: ImageCatalog }, filters: string[] = []): Promise<Alias[]> {
  const aliases = await store.meta.listAliases();
  return aliases.filter((a) => filters.every((f) => a.name.includes(f) || a.fingerprint.startsWith(f)));
}

export async function createAlias(store: { meta: ImageCatalog }, name: string, imageRef: string, description = ''): Promise<Alias> {
  validateAliasName(name);
  if (typeof description !== 'string') throw new AppError(ErrorCodes.invalidArgument, 'An alias description must be a string');
  const image = await resolveImage(store, imageRef);
  const alias: Alias = { name, fingerprint: image.fingerprint, description, type: image.type };
  await store.meta.createAlias(alias);
  return alias;
}

export async function renameAlias(store: { meta: ImageCatalog }, from: string, to: string): Promise<void> {
  validateAliasName(to);
  await store.meta.renameAlias(from, to);
}

export async function deleteAlias(store: { meta: ImageCatalog }, name: string): Promise<void> {
  await store.meta.deleteAlias(name);
}
