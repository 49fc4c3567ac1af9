/**
 * A stored file damaged on disk is repaired by importing the right bytes again: what an operator
 * does once `image verify` reports the damage (delete the image, import it again).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { flipped } from '../fixtures/hostile.ts';
import { fingerprintFrom, tempDir, wharf, wharfOk } from '../helpers/env.ts';

test('a stored rootfs damaged on disk is repaired by deleting the image and importing the same files again', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Repairos', release: '1', architecture: 'amd64' } });
  const rootfs = await buildSquashfs(work, { seed: 'repair' });
  const fingerprint = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, rootfs.path]));

  // A byte gone bad on disk.
  const stored = join(data, 'blobs', 'sha256', rootfs.sha256.slice(0, 2), rootfs.sha256);
  await writeFile(stored, flipped(await readFile(stored), rootfs.size >> 1));
  const damaged = await wharf(data, ['image', 'verify']);
  assert.notEqual(damaged.code, 0, damaged.stdout);
  assert.match(damaged.stdout, new RegExp(`${fingerprint}: CORRUPT`));

  await wharfOk(data, ['image', 'delete', fingerprint]);
  assert.equal(fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, rootfs.path])), fingerprint);
  const repaired = await wharf(data, ['image', 'verify']);
  assert.equal(repaired.code, 0, repaired.stdout + repaired.stderr);
  assert.match(repaired.stdout, new RegExp(`${fingerprint}: ok`));
});
