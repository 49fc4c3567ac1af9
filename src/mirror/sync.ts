/**
 * Mirror sync: keep a filtered copy of a simplestreams server. It downloads only what it lacks,
 * verifies every byte, publishes each product version only once all its images are stored, keeps
 * the newest N versions per product, and retires the rest (their files stay downloadable for the
 * grace period). A sync killed half-way resumes where it stopped: finished images are kept,
 * still private, and published once their version is complete.
 */
import { defaultChannel } from '../domain/channel.ts';
import type { Delta, Image } from '../domain/image.ts';
import type { MirrorRecord } from '../meta/store.ts';
import type { RemoteFile, RemoteImage } from '../domain/simplestreams-read.ts';
import type { FileFormat } from '../domain/formats.ts';
import type { BlobSource } from '../meta/store.ts';
import { under } from '../remote/fetch.ts';
import { stageDownload } from './download.ts';
import { commitBlobs } from '../core/collect.ts';
import type { BlobWriter } from '../blob/store.ts';
import { matchesProperty } from '../domain/property-filter.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import type { Store } from '../core/context.ts';
import { deleteImages } from '../core/images.ts';
import { loadCatalogue } from '../remote/simplestreams.ts';
import { getRemote } from './remotes.ts';
import { importRemoteImage } from './copy.ts';

export const filterKeys = ['os', 'release', 'architecture', 'variant', 'type'] as const;

export function matchesMirror(image: RemoteImage, mirror: Pick<MirrorRecord, 'filters' | 'types'>): boolean {
  if (mirror.types.length && !mirror.types.includes(image.type)) return false;
  return Object.entries(mirror.filters).every(([key, value]) => matchesProperty(image, key, value));
}

/** The images to hold: of each product, every image of its newest `keep` versions. */
export function wantedImages(catalogue: RemoteImage[], mirror: Pick<MirrorRecord, 'filters' | 'types' | 'keep'>): RemoteImage[] {
  const byProduct = new Map<string, RemoteImage[]>();
  for (const image of catalogue) {
    if (!matchesMirror(image, mirror)) continue;
    byProduct.set(image.productKey, [...(byProduct.get(image.productKey) ?? []), image]);
  }
  return [...byProduct.values()].flatMap((images) => {
    const versions = [...new Set(images.map((i) => i.version))].sort().reverse().slice(0, mirror.keep);
    return images.filter((i) => versions.includes(i.version));
  });
}

export interface SyncPlan {
  add: RemoteImage[];
  remove: Image[];
}

export async function planSync(store: Store, mirror: MirrorRecord, catalogue: RemoteImage[]): Promise<SyncPlan> {
  const wanted = wantedImages(catalogue, mirror);
  const local = await store.meta.listImages();
  const have = new Set(local.map((i) => i.fingerprint));
  const wantedSet = new Set(wanted.map((i) => i.fingerprint));
  return {
    add: wanted.filter((i) => !have.has(i.fingerprint)),
    remove: local.filter((i) => i.mirror === mirror.name && !wantedSet.has(i.fingerprint)),
  };
}

export interface SyncReport {
  plan: SyncPlan;
  added: string[];
  removed: string[];
  failed: { fingerprint: string; error: string }[];
}

export interface SyncOptions {
  dryRun?: boolean;
  signal?: AbortSignal;
  /** Downloads in flight at once. */
  parallel?: number;
  attempts?: number;
  backoffMs?: number;
  idleTimeoutMs?: number;
  onBytes?: (n: number) => void;
}

export async function syncMirror(store: Store, mirror: MirrorRecord, options: SyncOptions = {}): Promise<SyncReport> {
  const remote = await getRemote(store, mirror.remote);
  if (remote.protocol !== 'simplestreams') throw new AppError(ErrorCodes.invalidArgument, `Mirror ${mirror.name}: only simplestreams remotes can be mirrored`);
  const catalogue = await loadCatalogue(remote.url, { certificate: remote.certificate || undefined, signal: options.signal }, remote.gpgKey || undefined);
  const plan = await planSync(store, mirror, catalogue);
  const report: SyncReport = { plan, added: [], removed: [], failed: [] };
  if (options.dryRun) return report;

  if (mirror.lazy) {
    // Publish at once; files come on first request (lazy.ts). Whole versions, in one insert each.
    for (const image of plan.add) {
      let lazy: ReturnType<typeof lazyImage>;
      try {
        lazy = lazyImage(remote.url, remote.certificate, image, mirror.name);
      } catch (err) {
        // An index entry naming a file outside the upstream: that image alone is refused.
        report.failed.push({ fingerprint: image.fingerprint, error: (err as Error).message });
        continue;
      }
      await store.meta.insertImage(lazy.record, [], lazy.sources);
      report.added.push(image.fingerprint);
    }
  }
  const attempts = options.attempts ?? 3;
  const backoffMs = options.backoffMs ?? 1000;
  const fetchOne = async (image: RemoteImage) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await importRemoteImage(store, remote, image, {
          aliases: [],
          public: false,
          autoUpdate: false,
          updateAlias: image.aliases[0] ?? '',
          productAliases: image.aliases,
          mirror: mirror.name,
          ...(options.idleTimeoutMs ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
          ...(options.onBytes ? { onBytes: options.onBytes } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
        });
        report.added.push(image.fingerprint);
        await fetchDeltas(store, remote.url, remote.certificate, image, options.signal);
        return;
      } catch (err) {
        // Bad input from upstream will not improve with retries; a network fault may.
        const retry = attempt < attempts && !(err instanceof AppError && (err.code === ErrorCodes.upstreamCorrupt || err.code === ErrorCodes.conflict));
        if (!retry) {
          report.failed.push({ fingerprint: image.fingerprint, error: (err as Error).message });
          store.log.warn('mirror download failed', { mirror: mirror.name, fingerprint: image.fingerprint, err });
          return;
        }
        await new Promise((r) => setTimeout(r, backoffMs * 2 ** (attempt - 1)));
      }
    }
  };
  if (!mirror.lazy) await pool(plan.add, options.parallel ?? 3, fetchOne);

  // Publish each wanted version whose images are now all here, in one step.
  const wanted = wantedImages(catalogue, mirror);
  const local = new Map((await store.meta.listImages()).map((i) => [i.fingerprint, i]));
  const versions = new Map<string, RemoteImage[]>();
  for (const image of wanted) versions.set(`${image.productKey}@${image.version}`, [...(versions.get(`${image.productKey}@${image.version}`) ?? []), image]);
  for (const images of versions.values()) {
    if (!images.every((i) => local.has(i.fingerprint))) continue;
    await store.meta.publishImages(images.map((i) => local.get(i.fingerprint)!).filter((i) => i.mirror === mirror.name && !i.public).map((i) => i.fingerprint));
  }

  if (plan.remove.length) {
    await deleteImages(store, plan.remove.map((i) => i.fingerprint), `mirror ${mirror.name}`);
    report.removed.push(...plan.remove.map((i) => i.fingerprint));
  }
  await store.meta.putMirror({
    ...mirror,
    lastSync: new Date().toISOString(),
    lastError: report.failed.length ? `${report.failed.length} images failed: ${report.failed[0]!.error}` : null,
  });
  return report;
}

/** Upstream deltas as records (only those that say which version they patch from). */
function deltasOf(image: RemoteImage): Delta[] {
  return image.deltas.filter((d) => d.deltaBase).map((d) => ({ sha256: d.sha256, size: d.size, format: { kind: 'vcdiff' }, ftype: d.ftype, base: d.deltaBase! }));
}

/**
 * Deltas save clients bandwidth but are never required: fetched after their image, verified, and
 * skipped (with a warning) if they fail.
 */
async function fetchDeltas(store: Store, base: string, certificate: string, image: RemoteImage, signal?: AbortSignal) {
  const wanted: Delta[] = [];
  const staged: BlobWriter[] = [];
  try {
    for (const delta of deltasOf(image)) {
      const file = image.deltas.find((d) => d.sha256 === delta.sha256)!;
      try {
        if ((await store.blobs.size(delta.sha256)) === undefined) {
          staged.push(await stageDownload(store.blobs, under(base, file.path), delta, { certificate: certificate || undefined, signal }));
        }
        wanted.push(delta);
      } catch (err) {
        store.log.warn('delta not mirrored', { fingerprint: image.fingerprint, path: file.path, err });
      }
    }
    // A delta already stored is claimed too, so the collector cannot take it before it is recorded.
    const stagedDigests = await Promise.all(staged.map((w) => w.digest()));
    const existing = wanted.map((d) => d.sha256).filter((sha) => !stagedDigests.includes(sha));
    if (wanted.length) await commitBlobs(store, staged, () => store.meta.addDeltas(image.fingerprint, wanted), existing);
  } catch (err) {
    store.log.warn('deltas not recorded', { fingerprint: image.fingerprint, err });
  } finally {
    await Promise.all(staged.map((w) => w.abort()));
  }
}

function formatOf(file: RemoteFile): FileFormat {
  if (file.ftype === 'squashfs') return { kind: 'squashfs' };
  if (file.ftype.startsWith('disk') || file.ftype.startsWith('uefi')) return { kind: 'qcow2' };
  // Only the name tells before the bytes arrive; it only shapes the served file name.
  const ext = /\.tar\.(gz|xz|bz2|zst|lz4|lzma)$|\.tar$/.exec(file.path)?.[1];
  const compression = ({ gz: 'gzip', xz: 'xz', bz2: 'bzip2', zst: 'zstd', lz4: 'lz4', lzma: 'lzma' } as const)[ext as 'gz'] ?? (file.path.endsWith('.tar') ? 'none' : 'xz');
  return { kind: 'tarball', compression };
}

/** The record of an image whose files are not here yet, and where to get them. */
export function lazyImage(base: string, certificate: string, image: RemoteImage, mirror: string): { record: Image; sources: Record<string, BlobSource> } {
  const blob = (f: RemoteFile) => ({ sha256: f.sha256, size: f.size, format: formatOf(f) });
  const deltas = deltasOf(image);
  const files = [image.metadata, ...(image.rootfs ? [image.rootfs] : []), ...image.deltas.filter((d) => d.deltaBase)];
  const now = new Date().toISOString();
  return {
    record: {
      fingerprint: image.fingerprint,
      type: image.type,
      architecture: image.architecture,
      filename: (image.rootfs ?? image.metadata).path.split('/').pop() ?? '',
      size: files.reduce((n, f) => n + f.size, 0),
      public: true,
      createdAt: image.createdAt,
      uploadedAt: now,
      expiresAt: image.expiresAt,
      lastUsedAt: null,
      properties: image.properties,
      templates: {},
      metadata: blob(image.metadata),
      rootfs: image.rootfs ? blob(image.rootfs) : null,
      autoUpdate: false,
      cached: true,
      updateSource: { server: base, protocol: 'simplestreams', alias: image.aliases[0] ?? '', certificate, imageType: image.type },
      productAliases: image.aliases,
      mirror,
      deltas,
      channels: [defaultChannel],
      pinned: [],
      stage: null,
      revision: 1,
    },
    sources: Object.fromEntries(files.map((f) => [f.sha256, { url: under(base, f.path).href, certificate }])),
  };
}

async function pool<T>(items: T[], size: number, work: (item: T) => Promise<void>) {
  let next = 0;
  const runners = Array.from({ length: Math.min(size, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(runners);
}
