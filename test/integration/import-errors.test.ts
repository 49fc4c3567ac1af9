/**
 * Every bad input to `wharf image import` gets a clear message, a non-zero exit, and leaves the
 * store exactly as it was (same images, same blob files, no staging leftovers).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildMetadataTarball,
  buildQcow2,
  buildRootfsTarball,
  buildSquashfs,
  buildUnified,
  truncateCopy,
} from '../fixtures/images.ts';
import { tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { storeState } from '../helpers/store-state.ts';

test('bad imports are refused with a clear error and change nothing', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  // A store with one image in it, so "unchanged" means something.
  const meta = await buildMetadataTarball(work, { name: 'meta-good.tar.xz' });
  const squashfs = await buildSquashfs(work, { seed: 'good' });
  await wharfOk(data, ['image', 'import', meta.path, squashfs.path, '--alias', 'taken']);
  const before = await storeState(data);

  const dir = join(work, 'bad');
  await mkdir(dir);
  const text = join(dir, 'notes.txt');
  await writeFile(text, 'this is not an image\n'.repeat(100));
  const unified = await buildUnified(dir, { compression: 'xz', name: 'unified.tar.xz' });
  const unifiedVm = await buildUnified(dir, { vm: true, name: 'unified-vm.tar.gz' });
  const qcow2 = await buildQcow2(dir, {});
  const rootGz = await buildRootfsTarball(dir, { compression: 'gzip', padMiB: 1 });
  const sq = await buildSquashfs(dir, { seed: 'x', padMiB: 1 });

  const cases: { name: string; args: () => Promise<string[]>; message: RegExp }[] = [
    { name: 'missing file', args: async () => [join(dir, 'nope.tar.xz')], message: /Cannot read .*nope\.tar\.xz: ENOENT/ },
    { name: 'a directory', args: async () => [dir], message: /is not a regular file/ },
    { name: 'not an archive', args: async () => [text], message: /notes\.txt is not an image file/ },
    {
      name: 'truncated unified tarball',
      args: async () => [(await truncateCopy(unified.path, join(dir, 'cut.tar.xz'), 0.5)).path],
      message: /corrupt or truncated/,
    },
    {
      name: 'truncated rootfs tarball',
      args: async () => [meta.path, (await truncateCopy(rootGz.path, join(dir, 'cut-root.tar.gz'), 0.6)).path],
      message: /corrupt or truncated/,
    },
    {
      name: 'truncated squashfs',
      args: async () => [meta.path, (await truncateCopy(sq.path, join(dir, 'cut.squashfs'), 0.5)).path],
      message: /truncated/,
    },
    {
      name: 'truncated qcow2',
      args: async () => [meta.path, (await truncateCopy(qcow2.path, join(dir, 'cut.qcow2'), 0.5)).path],
      message: /not a valid qcow2 disk/,
    },
    {
      name: 'no metadata.yaml',
      args: async () => [(await buildMetadataTarball(dir, { noMetadataYaml: true, name: 'nometa.tar.xz' })).path, sq.path],
      message: /has no metadata\.yaml/,
    },
    {
      name: 'invalid YAML',
      args: async () => [(await buildMetadataTarball(dir, { rawYaml: 'architecture: [x86_64\n', name: 'badyaml.tar.xz' })).path, sq.path],
      message: /metadata\.yaml is not valid YAML/,
    },
    {
      name: 'missing architecture',
      args: async () => [(await buildMetadataTarball(dir, { omit: ['architecture'], name: 'noarch.tar.xz' })).path, sq.path],
      message: /metadata\.yaml has no architecture/,
    },
    {
      name: 'missing creation_date',
      args: async () => [(await buildMetadataTarball(dir, { omit: ['creation_date'], name: 'nodate.tar.xz' })).path, sq.path],
      message: /metadata\.yaml has no creation_date/,
    },
    {
      name: 'unknown architecture',
      args: async () => [(await buildMetadataTarball(dir, { architecture: 'vax', name: 'vax.tar.xz' })).path, sq.path],
      message: /unknown architecture "vax"/,
    },
    { name: 'qcow2 with a container image as metadata', args: async () => [unified.path, qcow2.path], message: /is a unified image \(it holds rootfs\/\)/ },
    { name: 'squashfs with a VM image as metadata', args: async () => [unifiedVm.path, sq.path], message: /is a unified image \(it holds rootfs\.img\)/ },
    {
      name: 'qcow2 with metadata that declares a container',
      args: async () => [(await buildMetadataTarball(dir, { properties: { os: 'a', release: 'b', type: 'container' }, name: 'ct.tar.xz' })).path, qcow2.path],
      message: /describes a container but .* holds a VM disk/,
    },
    {
      name: 'squashfs with metadata that declares a VM',
      args: async () => [(await buildMetadataTarball(dir, { properties: { os: 'a', release: 'b', type: 'virtual-machine' }, name: 'vmm.tar.xz' })).path, sq.path],
      message: /describes a virtual-machine but .* holds a container root filesystem/,
    },
    { name: 'a squashfs as metadata', args: async () => [sq.path, meta.path], message: /is a squashfs, but a metadata file must be a tarball/ },
    { name: 'fingerprint already present', args: async () => [meta.path, squashfs.path], message: /already exists/ },
    { name: 'alias already taken', args: async () => [unified.path, '--alias', 'taken'], message: /Alias "taken" already exists/ },
    { name: 'invalid alias', args: async () => [unified.path, '--alias', 'a,b'], message: /Invalid alias name "a,b"/ },
    { name: 'bad property', args: async () => [unified.path, '--property', 'novalue'], message: /Bad property "novalue"/ },
  ];

  for (const c of cases) {
    const result = await wharf(data, ['image', 'import', ...(await c.args())]);
    assert.notEqual(result.code, 0, `${c.name}: should fail\n${result.stdout}`);
    assert.match(result.stderr, c.message, `${c.name}: message`);
    assert.match(result.stderr, /^Error: /, `${c.name}: a message, not a stack trace`);
    assert.doesNotMatch(result.stderr, /\n\s+at /, `${c.name}: no stack trace`);
    assert.deepEqual(await storeState(data), before, `${c.name}: store unchanged`);
  }
});
