/**
 * Registry mirrors (`wharf oci mirror add NAME REMOTE REPOSITORY --tag T --arch A`): chosen tags of
 * an upstream repository copied whole ahead of time (every platform, or the fleet's
 * architectures), so that an air-gapped or rate-limited site has them before anyone asks. A mirror
 * is a MirrorRecord of an OCI remote, run by the same scheduler as image mirrors; its sync goes
 * through the pull-through cache (every manifest and blob checked against its digest, each tag
 * checked upstream on every sync) into `REMOTE/REPOSITORY`.
 */
import { AppError, ErrorCodes } from '../errors.ts';
import { checkRepository, indexPlatforms, isTag } from '../domain/oci.ts';
import type { MirrorRecord } from '../meta/store.ts';
import type { Store } from '../core/context.ts';
import { getRemote } from './remotes.ts';
import { OciCache } from './oci-cache.ts';
import { storedManifestBytes } from '../core/registry.ts';

export interface OciMirrorReport {
  tags: string[];
  blobs: number;
  failed: { tag: string; error: string }[];
}

export async function addOciMirror(store: Store, options: { name: string; remote: string; repository: string; tags: string[]; architectures: string[]; intervalSeconds: number }): Promise<MirrorRecord> {
  const remote = await getRemote(store, options.remote);
  if (remote.protocol !== 'oci') throw new AppError(ErrorCodes.invalidArgument, `Remote "${options.remote}" is not a registry`, { hint: 'Add one with: wharf oci remote add NAME URL' });
  checkRepository(options.repository);
  if (!options.tags.length) throw new AppError(ErrorCodes.invalidArgument, 'A registry mirror copies chosen tags: give --tag at least once');
  for (const tag of options.tags) if (!isTag(tag)) throw new AppError(ErrorCodes.invalidArgument, `"${tag}" is not a tag`);
  if (!Number.isInteger(options.intervalSeconds) || options.intervalSeconds < 0) throw new AppError(ErrorCodes.invalidArgument, 'A mirror interval must be a whole number of seconds');
  if ((await store.meta.listMirrors()).some((m) => m.name === options.name)) throw new AppError(ErrorCodes.conflict, `Mirror "${options.name}" already exists`);
  const record: MirrorRecord = {
    name: options.name,
    remote: options.remote,
    filters: { repository: options.repository, tags: options.tags.join(','), ...(options.architectures.length ? { architectures: options.architectures.join(',') } : {}) },
    types: [],
    keep: 0,
    intervalSeconds: options.intervalSeconds,
    lazy: false,
    lastSync: null,
    lastError: null,
  };
  await store.meta.putMirror(record);
  return record;
}

/** Copies the mirror's tags whole (the platforms it wants); records when, and the first error. */
export async function syncOciMirror(store: Store, mirror: MirrorRecord, credentials: Record<string, { username: string; password: string }> = {}): Promise<OciMirrorReport> {
  const remote = await getRemote(store, mirror.remote);
  const upstream = mirror.filters.repository!;
  const repository = `${remote.name}/${upstream}`;
  const route = { remote, upstream };
  // A sync checks every tag upstream: no time to live.
  const cache = new OciCache(store, { ttlMs: 0, credentials });
  const wanted = mirror.filters.architectures?.split(',').filter(Boolean) ?? [];
  const report: OciMirrorReport = { tags: [], blobs: 0, failed: [] };
  for (const tag of (mirror.filters.tags ?? '').split(',').filter(Boolean)) {
    try {
      const { manifest } = await cache.manifest(repository, route, { tag });
      const children = manifest.manifests.length ? indexPlatforms(await storedManifestBytes(store, manifest)) : new Map<string, string>();
      const chosen = manifest.manifests.filter((child) => !wanted.length || wanted.includes(children.get(child)?.split('/')[1] ?? ''));
      for (const child of [manifest, ...(await Promise.all(chosen.map(async (sha256) => (await cache.manifest(repository, route, { sha256 })).manifest)))]) {
        for (const blob of child.blobs) {
          await cache.blob(repository, route, blob);
          report.blobs++;
        }
      }
      report.tags.push(tag);
    } catch (err) {
      report.failed.push({ tag, error: (err as Error).message });
    }
  }
  await store.meta.putMirror({ ...mirror, lastSync: new Date().toISOString(), lastError: report.failed[0]?.error ?? null });
  return report;
}
