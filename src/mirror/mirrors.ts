/** The mirrors an operator sets up (`wharf mirror add`), and syncing them by hand (`mirror sync`). */
import { AppError, ErrorCodes } from '../errors.ts';
import { checkKeep } from '../domain/product.ts';
import type { MirrorRecord } from '../meta/store.ts';
import type { Store } from '../core/context.ts';
import { getRemote } from './remotes.ts';
import { filterKeys, syncMirror, type SyncOptions, type SyncReport } from './sync.ts';

export const imageTypes = ['container', 'virtual-machine'] as const;

export interface NewMirror {
  name: string;
  /** A simplestreams remote. */
  remote: string;
  /** KEY=VALUE, KEY one of filterKeys (sync.ts); all must match. */
  filters: string[];
  /** Versions kept per product. */
  keep: number;
  /** How often `wharf serve` syncs it; 0 = only by hand. */
  intervalSeconds: number;
  types: string[];
  lazy: boolean;
}

export async function addMirror(store: Store, mirror: NewMirror): Promise<MirrorRecord> {
  const filters: Record<string, string> = {};
  for (const f of mirror.filters) {
    const eq = f.indexOf('=');
    const [key, value] = [f.slice(0, eq), f.slice(eq + 1)];
    if (eq < 0 || !(filterKeys as readonly string[]).includes(key) || !value) {
      throw new AppError(ErrorCodes.invalidArgument, `Invalid filter "${f}"`, { hint: `Use KEY=VALUE with KEY one of ${filterKeys.join(', ')}.` });
    }
    filters[key] = value;
  }
  checkKeep(mirror.keep);
  for (const t of mirror.types) if (!(imageTypes as readonly string[]).includes(t)) throw new AppError(ErrorCodes.invalidArgument, `Unknown image type "${t}"`);
  if (!Number.isInteger(mirror.intervalSeconds) || mirror.intervalSeconds < 0) throw new AppError(ErrorCodes.invalidArgument, 'A mirror interval must be a whole number of seconds');
  const remote = await getRemote(store, mirror.remote);
  if (remote.protocol !== 'simplestreams') throw new AppError(ErrorCodes.invalidArgument, `Remote "${mirror.remote}" is not a simplestreams server`);
  if ((await store.meta.listMirrors()).some((m) => m.name === mirror.name)) throw new AppError(ErrorCodes.conflict, `Mirror "${mirror.name}" already exists`);
  const record: MirrorRecord = {
    name: mirror.name,
    remote: mirror.remote,
    filters,
    types: mirror.types as MirrorRecord['types'],
    keep: mirror.keep,
    intervalSeconds: mirror.intervalSeconds,
    lazy: mirror.lazy,
    lastSync: null,
    lastError: null,
  };
  await store.meta.putMirror(record);
  return record;
}

/**
 * Syncs the mirror named `name`, or every mirror, one after the other; `onReport` hears each
 * report as its sync ends. The count is of the images that could not be mirrored.
 */
export async function syncMirrors(
  store: Store,
  name: string | undefined,
  options: SyncOptions,
  onReport: (mirror: MirrorRecord, report: SyncReport) => void,
): Promise<{ failed: number }> {
  const named = (await store.meta.listMirrors()).filter((m) => !name || m.name === name);
  if (name && named.length === 0) throw new AppError(ErrorCodes.notFound, `Mirror "${name}" not found`);
  // Registry mirrors have their own sync (`wharf oci mirror sync`).
  const registries = new Set((await store.meta.listRemotes()).filter((r) => r.protocol === 'oci').map((r) => r.name));
  if (name && registries.has(named[0]!.remote)) throw new AppError(ErrorCodes.invalidArgument, `Mirror "${name}" copies a registry`, { hint: `Sync it with: wharf oci mirror sync ${name}` });
  const mirrors = named.filter((m) => !registries.has(m.remote));
  let failed = 0;
  for (const mirror of mirrors) {
    const report = await syncMirror(store, mirror, options);
    onReport(mirror, report);
    failed += report.failed.length;
  }
  return { failed };
}
