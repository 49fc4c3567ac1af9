/** Air-gapped trees and pruning. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { buildMetadataTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, tempDir, wharf, wharfOk } from '../helpers/env.ts';

type Listed = { fingerprint: string; aliases: { name: string }[] };
const list = async (data: string, ...filters: string[]) => JSON.parse(await wharfOk(data, ['image', 'list', ...filters, '--format', 'json'])) as Listed[];

async function version(work: string, data: string, serial: string, alias?: string) {
  const meta = await buildMetadataTarball(work, { name: `m${serial}.tar.xz`, properties: { os: 'Debian', release: '12', architecture: 'amd64', serial: `${serial}_00:00` } });
  const sq = await buildSquashfs(work, { name: `s${serial}.squashfs`, seed: serial });
  return fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, sq.path, ...(alias ? ['--alias', alias] : [])]));
}

test('tree export writes a servable tree; tree import on the other side verifies and loads it', async (t) => {
  const work = await tempDir(t);
  const source = join(work, 'source');
  const a = await version(work, source, '20250101');
  const b = await version(work, source, '20250201');
  const uni = await buildUnified(work, { properties: { os: 'Alpine', release: '3' } });
  const fpUni = fingerprintFrom(await wharfOk(source, ['image', 'import', uni.path]));
  await wharfOk(source, ['image', 'import', (await buildUnified(work, { name: 'p.tar.gz', seed: 'p', properties: { os: 'P', release: '1' } })).path, '--private']);

  const tree = join(work, 'tree');
  // Two split images, and the delta the second got from the first on entering the channel.
  assert.match(await wharfOk(source, ['tree', 'export', tree, 'os=Debian']), /Exported 2 images \(5 files\)/);
  const index = JSON.parse(await readFile(join(tree, 'streams/v1/index.json'), 'utf8'));
  assert.deepEqual(index.index.images.products, ['debian:12:amd64:default']);
  assert.match(await wharfOk(source, ['tree', 'export', tree]), /Exported 3 images/, 'private images stay out');

  const target = join(work, 'target');
  assert.match(await wharfOk(target, ['tree', 'import', tree]), /Imported 3 images/);
  assert.deepEqual((await list(target)).map((i) => i.fingerprint).sort(), [a, b, fpUni].sort());
  assert.match(await wharfOk(target, ['tree', 'import', tree]), /Imported 0 images, 3 already present/);

  // A damaged tree is refused file by file.
  const broken = join(work, 'broken');
  const products = JSON.parse(await readFile(join(tree, 'streams/v1/images.json'), 'utf8'));
  const item = Object.values(products.products['alpine:3:amd64:default'].versions as Record<string, { items: Record<string, { path: string }> }>)[0]!.items['incus_combined.tar.gz']!;
  await mkdir(join(broken, 'streams/v1'), { recursive: true });
  await mkdir(join(broken, 'files'));
  await writeFile(join(broken, 'streams/v1/index.json'), await readFile(join(tree, 'streams/v1/index.json')));
  await writeFile(join(broken, 'streams/v1/images.json'), JSON.stringify(products));
  await writeFile(join(broken, item.path), 'not the file');
  const fresh = join(work, 'fresh');
  const r = await wharf(fresh, ['tree', 'import', broken]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /is not an image file|Hash mismatch|truncated/);
});

test('prune keeps the newest versions, pinned images, and files within the grace period', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const v1 = await version(work, data, '20250101', 'pinned');
  const v2 = await version(work, data, '20250201');
  const v3 = await version(work, data, '20250301');
  const v4 = await version(work, data, '20250401');
  const dry = await wharfOk(data, ['prune', '--keep', '2', '--dry-run']);
  assert.match(dry, /Would remove 1 images/);
  assert.ok(dry.includes(v2.slice(0, 12)));
  assert.equal((await list(data)).length, 4);
  assert.match(await wharfOk(data, ['prune', '--keep', '2']), /Removed 1 images and 0 files/, 'files stay for the grace period');
  assert.deepEqual((await list(data)).map((i) => i.fingerprint).sort(), [v1, v3, v4].sort());
  assert.match(await wharfOk(data, ['prune', '--keep', '1'], { env: { WHARF_GRACE_PERIOD: '0' } }), /Removed 1 images and [1-9]\d* files/);
  assert.deepEqual((await list(data)).map((i) => i.fingerprint).sort(), [v1, v4].sort());
  assert.match(await wharfOk(data, ['prune', '--older-than', '0s']), /Removed 0 images/, 'never the newest version');
  assert.match(await wharfOk(data, ['image', 'verify']), new RegExp(`${v4}: ok`));
});
