/**
 * Creating a directory and its missing parents. Not `mkdir(path, { recursive: true })`: Node's
 * recursive mkdir spins forever where creating an entry fails with ENOENT under a parent that
 * exists (anywhere in /proc, e.g. `--data-dir /proc/x/y`), and the paths here come from users.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Creates `path` and its missing parents; true if `path` itself was created. */
export async function ensureDirectory(path: string): Promise<boolean> {
  try {
    await mkdir(path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if ((await stat(path)).isDirectory()) return false;
      throw err;
    }
    const parent = dirname(path);
    // Only a missing parent is worth creating; a parent that exists means this cannot be made.
    if (code !== 'ENOENT' || parent === path || (await stat(parent).catch(() => undefined)) !== undefined) throw err;
    await ensureDirectory(parent);
    return ensureDirectory(path);
  }
}
