/**
 * `wharf cache list|verify|purge`: looking after a mirror's cache from the command line, also
 * while the mirror serves (it fetches a purged file again on its next request).
 */
import { createHash } from 'node:crypto';
import type { BlobStore } from '../blob/store.ts';
import { isFingerprintPrefix } from '../domain/fingerprint.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import { savedPaths } from './origin-index.ts';
import type { CacheBlobs } from './edge-cache.ts';

export interface CachedFile {
  sha256: string;
  size: number;
  lastUse: string;
  /** The origin's paths for these bytes, as last read (none once it stopped listing them). */
  paths: string[];
}

export async function listCached(blobs: CacheBlobs, statePath: string): Promise<CachedFile[]> {
  const { paths } = await savedPaths(statePath);
  const files: CachedFile[] = [];
  for await (const blob of blobs.lastUses()) {
    files.push({ sha256: blob.sha256, size: blob.size, lastUse: new Date(blob.lastUseMs).toISOString(), paths: (paths.get(blob.sha256) ?? []).sort() });
  }
  return files.sort((a, b) => (a.paths[0] ?? a.sha256).localeCompare(b.paths[0] ?? b.sha256));
}

/** Whether a cached file still has the bytes its name promises (read and hashed again). */
export async function blobIntact(blobs: BlobStore, sha256: string): Promise<boolean> {
  const hash = createHash('sha256');
  for await (const chunk of await blobs.openRead(sha256)) hash.update(chunk as Buffer);
  return hash.digest('hex') === sha256;
}

/** Re-hashes every cached file; one whose bytes changed on disk is removed (refetched on demand). */
export async function verifyCached(blobs: BlobStore, report: (sha256: string, ok: boolean) => void): Promise<{ checked: number; removed: string[] }> {
  const removed: string[] = [];
  let checked = 0;
  for await (const blob of blobs.list()) {
    const ok = await blobIntact(blobs, blob.sha256);
    checked++;
    if (!ok) {
      await blobs.delete(blob.sha256);
      removed.push(blob.sha256);
    }
    report(blob.sha256, ok);
  }
  return { checked, removed };
}

/**
 * Removes cached files named by `targets` (origin paths or sha256 prefixes of at least 12 digits),
 * or every file when there are none; returns the sha256s removed.
 */
export async function purgeCached(blobs: CacheBlobs, statePath: string, targets: string[]): Promise<string[]> {
  const cached = await listCached(blobs, statePath);
  const chosen = new Set<string>();
  for (const target of targets) {
    const bare = target.replace(/^\/+/, '');
    const matches = cached.filter((f) => f.paths.includes(bare) || (isFingerprintPrefix(target.toLowerCase(), 12) && f.sha256.startsWith(target.toLowerCase())));
    if (matches.length === 0) throw new AppError(ErrorCodes.notFound, `No cached file is "${target}"`, { hint: 'See wharf cache list.' });
    for (const m of matches) chosen.add(m.sha256);
  }
  const victims = targets.length ? [...chosen] : cached.map((f) => f.sha256);
  for (const sha256 of victims) await blobs.delete(sha256);
  return victims;
}
