/**
 * Creating a directory and its missing parents. Not `mkdir(path, { recursive: true })`: Node's
 * recursive mkdir spins forever where creating an entry fails with ENOENT under a parent that
 * exists (anywhere in /proc, e.g. `--data-dir /proc/x/y`), and the paths here come from users.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Creates `path` and its missing parents; true if `path` itself was created here. */
export async function ensureDirectory(path: string): Promise<boolean> {
  try {
    return await makeOne(path);
  } catch (err) {
    const parent = dirname(path);
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === path) throw err;
    if ((await stat(parent).catch(() => undefined)) === undefined) await ensureDirectory(parent);
    // Once more, and only once: the parent exists now (made here, or by another process
    // meanwhile); if this still fails, the directory cannot be made there.
    return makeOne(path);
  }
}

/** mkdir that counts an existing directory as success (false: it was there already). */
async function makeOne(path: string): Promise<boolean> {
  try {
    await mkdir(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' && (await stat(path)).isDirectory()) return false;
    throw err;
  }
}
