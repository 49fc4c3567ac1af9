/**
 * The part of a larger file a site check compares, besides the smallest file: downloading every
 * file of every site each round would cost as much as serving them, while a random range of a
 * random file, round after round, finds a site that serves wrong bytes of any of them.
 */
import type { ByteRange } from '../blob/store.ts';
import type { OriginFiles, PublishedFile } from './origin-files.ts';

export interface Sample {
  file: PublishedFile;
  range: ByteRange;
  /** The origin's own bytes of `range`. */
  bytes: Buffer;
}

export const sampleBytes = 64 * 1024;
/** Files tried for one the origin can read (a lazily mirrored file may not be stored yet). */
const tries = 8;

/**
 * A random range of a random published file other than the smallest (checked whole anyway):
 * among those the site says it holds when it says (`held`), so a false claim is found out, and
 * among every published file otherwise. Undefined when there is none to sample.
 */
export async function pickSample(files: OriginFiles, held: string[] | null, random: () => number): Promise<Sample | undefined> {
  const smallest = files.smallest()?.sha256;
  const listed = held === null ? [...files.all()] : held.map((sha256) => files.find(sha256)).filter((f) => f !== undefined);
  const candidates = listed.filter((f) => f.sha256 !== smallest && f.size > 0);
  for (let attempt = 0; attempt < tries && candidates.length > 0; attempt++) {
    const [file] = candidates.splice(Math.floor(random() * candidates.length), 1) as [PublishedFile];
    const length = Math.min(sampleBytes, file.size);
    const start = Math.floor(random() * (file.size - length + 1));
    const range = { start, end: start + length - 1 };
    const bytes = await files.read(file.sha256, range);
    if (bytes) return { file, range, bytes };
  }
  return undefined;
}
