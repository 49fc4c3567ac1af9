/**
 * The system CA store, which is the only trust the real clients' simplestreams code uses: test
 * certificates go in before a daemon starts (daemons read the store once) and out afterwards.
 * Each file gets a tag of its own, so parallel setups never remove each other's.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const caDir = '/usr/local/share/ca-certificates';

/** Adds the PEMs to the store; the returned function removes them again. */
export async function trustSystemWide(pems: string[]): Promise<() => Promise<void>> {
  const tag = randomBytes(4).toString('hex');
  const files = pems.map((_, i) => join(caDir, `wharf-test-${tag}-${i}.crt`));
  await Promise.all(pems.map((pem, i) => writeFile(files[i]!, pem)));
  updateCaStore();
  return async () => {
    await Promise.all(files.map((f) => rm(f, { force: true })));
    updateCaStore();
  };
}

function updateCaStore() {
  const result = spawnSync('update-ca-certificates', ['--fresh'], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`update-ca-certificates failed: ${result.stderr}`);
}
