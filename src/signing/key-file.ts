/** The server's signing key in its data directory: `signing-key.asc`, readable by its owner only. */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError, ErrorCodes } from '../errors.ts';
import { ensureDirectory } from '../directories.ts';
import { readSigningKey, type Signer } from './openpgp.ts';

export const signingKeyFile = (dataDir: string) => join(dataDir, 'signing-key.asc');

/**
 * The signer of this server: the key file `signing_key` names (the same file on every replica),
 * or the data directory's; undefined when the data directory has none (indexes go unsigned).
 */
export async function loadSigner(dataDir: string, keyFile?: string): Promise<Signer | undefined> {
  let armored: string;
  try {
    armored = await readFile(keyFile ?? signingKeyFile(dataDir), 'utf8');
  } catch (err) {
    if (keyFile !== undefined) throw new AppError(ErrorCodes.config, `signing_key: cannot read ${keyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return readSigningKey(armored);
}

/** Installs `armored` (checked first) as the signing key; replacing one takes `replace`. */
export async function saveSigningKey(dataDir: string, armored: string, replace: boolean): Promise<Signer> {
  const signer = await readSigningKey(armored);
  await ensureDirectory(dataDir);
  const path = signingKeyFile(dataDir);
  if (!replace && (await readFile(path).then(() => true, () => false))) {
    throw new AppError(ErrorCodes.conflict, `${path} already holds a signing key`, { hint: 'Use --force to replace it (clients holding the old public key will refuse new indexes).' });
  }
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, armored, { mode: 0o600 });
  await rename(temporary, path);
  return signer;
}
