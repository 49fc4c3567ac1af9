/** The `wharf image` workflow as a user runs it: list, filter, show, edit, aliases, export, verify. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { buildMetadataTarball, buildQcow2, buildRootfsTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, tempDir, wharf, wharfOk } from '../helpers/env.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
type Listed = { fingerprint: string; type: string; public: boolean; aliases: { name: string }[]; properties: Record<string, string>; architecture: string };

test('image workflow: list, filter, info, show, edit, properties, aliases, export, verify, delete', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, {});
  const sq = await buildSquashfs(work, { seed: 'a' });
  const disk = await buildQcow2(work, { seed: 'vm' });
  const unified = await buildUnified(work, { compression: 'bzip2', architecture: 'arm64', properties: { os: 'Other', release: '3' } });

  const fpSq = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, sq.path, '--alias', 'one', '--property', 'team=infra']));
  const fpVm = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, disk.path, '--alias', 'vm-one']));
  const fpUni = fingerprintFrom(await wharfOk(data, ['image', 'import', unified.path, '--private']));

  const list = async (...filters: string[]) =>
    (JSON.parse(await wharfOk(data, ['image', 'list', ...filters, '--format', 'json'])) as Listed[]).map((i) => i.fingerprint).sort();
  assert.deepEqual(await list(), [fpSq, fpVm, fpUni].sort());
  assert.deepEqual(await list(fpSq.slice(0, 10)), [fpSq]);
  assert.deepEqual(await list('vm-'), [fpVm]);
  assert.deepEqual(await list('type=virtual-machine'), [fpVm]);
  assert.deepEqual(await list('architecture=aarch64'), [fpUni]);
  assert.deepEqual(await list('architecture=arm64'), [fpUni]);
  assert.deepEqual(await list('os=Testlinux', 'type=container'), [fpSq]);
  assert.deepEqual(await list('team=infra'), [fpSq]);
  assert.deepEqual(await list('os=nothing'), []);

  const all = JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])) as Listed[];
  const sqListed = all.find((i) => i.fingerprint === fpSq)!;
  assert.equal(sqListed.properties.team, 'infra');
  assert.equal(sqListed.properties.os, 'Testlinux');
  assert.equal(all.find((i) => i.fingerprint === fpUni)!.public, false);
  assert.equal(all.find((i) => i.fingerprint === fpUni)!.architecture, 'aarch64');

  const table = await wharfOk(data, ['image', 'list']);
  assert.match(table, /\| one +\| [0-9a-f]{12} \| yes/);
  assert.match(table, /VIRTUAL-MACHINE/);
  const csv = await wharfOk(data, ['image', 'list', '--format', 'csv', fpSq.slice(0, 8)]);
  assert.equal(csv.trim().split('\n').length, 1);
  assert.ok(csv.startsWith(`one,${fpSq.slice(0, 12)},yes,`));
  assert.equal((parse(await wharfOk(data, ['image', 'list', '--format', 'yaml'])) as unknown[]).length, 3);
  assert.match((await wharf(data, ['image', 'list', '--format', 'xml'])).stderr, /Invalid format "xml"/);

  const info = await wharfOk(data, ['image', 'info', 'one']);
  assert.match(info, new RegExp(`Fingerprint: ${fpSq}`));
  assert.match(info, /Type: container/);
  assert.match(info, /Public: yes/);
  assert.match(info, /    - one/);

  const shown = parse(await wharfOk(data, ['image', 'show', 'vm-one']));
  assert.equal(shown.fingerprint, fpVm);
  assert.equal(shown.type, 'virtual-machine');

  // edit: properties, public and expiry change; architecture may not.
  shown.properties.description = 'edited';
  shown.public = false;
  shown.expires_at = '2030-01-01T00:00:00Z';
  await wharfOk(data, ['image', 'edit', 'vm-one'], { stdin: JSON.stringify(shown) });
  const edited = parse(await wharfOk(data, ['image', 'show', fpVm.slice(0, 8)]));
  assert.equal(edited.properties.description, 'edited');
  assert.equal(edited.public, false);
  assert.equal(edited.expires_at, '2030-01-01T00:00:00Z');
  const refused = await wharf(data, ['image', 'edit', 'vm-one'], { stdin: JSON.stringify({ ...edited, architecture: 'aarch64' }) });
  assert.equal(refused.code, 64, 'invalid_argument: EX_USAGE');
  assert.match(refused.stderr, /architecture cannot be changed/);
  assert.equal(parse(await wharfOk(data, ['image', 'show', 'vm-one'])).architecture, 'x86_64');

  await wharfOk(data, ['image', 'set-property', 'one', 'color', 'blue']);
  assert.equal(parse(await wharfOk(data, ['image', 'show', 'one'])).properties.color, 'blue');
  await wharfOk(data, ['image', 'unset-property', 'one', 'color']);
  assert.equal(parse(await wharfOk(data, ['image', 'show', 'one'])).properties.color, undefined);
  assert.match((await wharf(data, ['image', 'unset-property', 'one', 'color'])).stderr, /has no property "color"/);

  // aliases
  await wharfOk(data, ['image', 'alias', 'create', 'two', fpSq.slice(0, 12)]);
  await wharfOk(data, ['image', 'alias', 'rename', 'two', 'three']);
  const aliases = JSON.parse(await wharfOk(data, ['image', 'alias', 'list', '--format', 'json'])) as { name: string; target: string }[];
  assert.deepEqual(aliases.map((a) => a.name).sort(), ['one', 'three', 'vm-one']);
  assert.equal(aliases.find((a) => a.name === 'three')!.target, fpSq);
  assert.match((await wharf(data, ['image', 'alias', 'create', 'one', fpVm])).stderr, /Alias "one" already exists/);
  await wharfOk(data, ['image', 'alias', 'delete', 'three']);
  assert.match((await wharf(data, ['image', 'alias', 'delete', 'three'])).stderr, /Alias "three" not found/);
  const missing = await wharf(data, ['image', 'info', 'nonexistent']);
  assert.match(missing.stderr, /Image "nonexistent" not found/);
  assert.equal(missing.code, 66, 'not_found: EX_NOINPUT');
  assert.equal((await wharf(data, ['image', 'info'])).code, 64, 'a usage error: EX_USAGE');

  // export: the files as lxc names them, byte for byte.
  const out = join(work, 'out');
  await wharfOk(data, ['image', 'export', 'one', out]);
  assert.deepEqual((await readdir(out)).sort(), [`${fpSq}.squashfs`, `meta-${fpSq}.tar.xz`].sort());
  assert.equal(sha256(await readFile(join(out, `meta-${fpSq}.tar.xz`))), meta.sha256);
  assert.equal(sha256(await readFile(join(out, `${fpSq}.squashfs`))), sq.sha256);
  const out2 = join(work, 'out2');
  await wharfOk(data, ['image', 'export', fpUni, out2]);
  assert.deepEqual(await readdir(out2), [`${fpUni}.tar.bz2`]);

  // verify finds a flipped byte in a stored file.
  assert.match(await wharfOk(data, ['image', 'verify']), new RegExp(`${fpSq}: ok`));
  const blobPath = join(data, 'blobs', 'sha256', sq.sha256.slice(0, 2), sq.sha256);
  const handle = await open(blobPath, 'r+');
  const byte = Buffer.alloc(1);
  await handle.read(byte, 0, 1, 5000);
  byte[0] = byte[0]! ^ 0xff;
  await handle.write(byte, 0, 1, 5000);
  await handle.close();
  const verify = await wharf(data, ['image', 'verify']);
  assert.equal(verify.code, 65, 'integrity: EX_DATAERR');
  assert.match(verify.stdout, new RegExp(`${fpSq}: CORRUPT`));
  assert.match(verify.stdout, new RegExp(`${fpVm}: ok`));
  assert.match(verify.stderr, /1 of 3 images failed verification/);

  await wharfOk(data, ['image', 'delete', 'one', 'vm-one']);
  assert.deepEqual(await list(), [fpUni]);
  assert.match((await wharf(data, ['image', 'delete', fpUni, 'missing'])).stderr, /not found/);
  assert.deepEqual(await list(), [fpUni], 'one bad name deletes nothing');
});

test('generate-metadata makes a hand-built rootfs importable', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const rootfs = await buildRootfsTarball(work, { compression: 'zstd' });
  const output = join(work, 'metadata.tar.gz');
  await wharfOk(data, ['image', 'generate-metadata', '--os', 'Handmade', '--release', '7', '--architecture', 'arm64', '--variant', 'tiny', '--creation-date', '1700000000', '--output', output]);
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', output, rootfs.path]));
  const shown = parse(await wharfOk(data, ['image', 'show', fp]));
  assert.equal(shown.architecture, 'aarch64');
  assert.equal(shown.created_at, '2023-11-14T22:13:20Z');
  assert.equal(shown.properties.os, 'Handmade');
  assert.equal(shown.properties.variant, 'tiny');
  assert.equal(shown.properties.architecture, 'arm64');
  const bad = await wharf(data, ['image', 'generate-metadata', '--os', 'x', '--release', '1', '--architecture', 'vax', '--output', join(work, 'm.tar.xz')]);
  assert.match(bad.stderr, /Unknown architecture "vax"/);
});
