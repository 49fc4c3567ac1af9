/** What a test compares to say "the store is unchanged": the CLI's views and every stored file. */
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { wharfOk } from './env.ts';

/** Every file under `dir`, relative to it, sorted (a missing dir is empty). */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const entry of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else out.push(relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

export async function storeState(data: string) {
  return {
    images: await wharfOk(data, ['image', 'list', '--format', 'json']),
    aliases: await wharfOk(data, ['image', 'alias', 'list', '--format', 'json']),
    files: await filesUnder(join(data, 'blobs')),
  };
}
