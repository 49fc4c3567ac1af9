/**
 * The acceptance test of issue 2: the real lxc 5.0.2 client and LXD daemon use wharf as a
 * simplestreams remote over HTTPS. Unified, split tar.xz, split squashfs and VM qcow2 images are
 * imported with the CLI, then listed, exported and copied by the real clients.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildQcow2, buildRootfsTarball, buildSquashfs, buildUnified, sha256OfFiles } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { lxdUnavailable, startLxd } from '../helpers/lxd.ts';
import { assertPublishedValid } from '../helpers/published.ts';

interface LxcImage {
  fingerprint: string;
  type: string;
  architecture: string;
  public: boolean;
  size: number;
  aliases: { name: string }[];
  properties: Record<string, string>;
}

const unavailable = lxdUnavailable();

test('real lxc lists, exports and copies every image kind over simplestreams', { skip: !process.env.CI && unavailable }, async (t) => {
  if (unavailable) assert.fail(`interop tests must run in CI: ${unavailable}`);
  const work = await tempDir(t);
  const data = join(work, 'data');

  // One build: a metadata tarball shared by a squashfs, a root.tar.xz and a qcow2 VM disk.
  const props = { os: 'Testlinux', release: '1.0', variant: 'default', architecture: 'amd64', description: 'Testlinux 1.0' };
  const meta = await buildMetadataTarball(work, { properties: props, withTemplates: true });
  const squashfs = await buildSquashfs(work, { seed: 'sq' });
  const rootTar = await buildRootfsTarball(work, { compression: 'xz', seed: 'tar' });
  const disk = await buildQcow2(work, { seed: 'vm' });
  // A unified image of another product, in another compression and architecture spelling.
  const unified = await buildUnified(work, {
    compression: 'gzip',
    architecture: 'aarch64',
    properties: { os: 'Unitest', release: '2', architecture: 'arm64', description: 'Unitest 2' },
  });
  const unifiedAmd = await buildUnified(work, {
    compression: 'zstd',
    properties: { os: 'Unitest', release: '2', architecture: 'amd64', description: 'Unitest 2 amd64', serial: '20251201_10:00' },
    seed: 'u2',
  });

  const fp = {
    squashfs: fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, squashfs.path, '--alias', 'sq'])),
    tarball: fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, rootTar.path, '--alias', 'tarball'])),
    vm: fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, disk.path, '--alias', 'vm'])),
    unifiedArm: fingerprintFrom(await wharfOk(data, ['image', 'import', unified.path, '--alias', 'uni-arm'])),
    unified: fingerprintFrom(await wharfOk(data, ['image', 'import', unifiedAmd.path, '--alias', 'uni'])),
  };
  assert.equal(fp.squashfs, await sha256OfFiles(meta.path, squashfs.path));
  assert.equal(fp.tarball, await sha256OfFiles(meta.path, rootTar.path));
  assert.equal(fp.vm, await sha256OfFiles(meta.path, disk.path));
  assert.equal(fp.unified, unifiedAmd.sha256);
  // A private image must never show up in simplestreams.
  const privateImage = await buildUnified(work, { properties: { os: 'Secret', release: '1' }, seed: 'private' });
  const fpPrivate = fingerprintFrom(await wharfOk(data, ['image', 'import', privateImage.path, '--private']));

  const server = await serve(t, data);
  const lxd = await startLxd(t, [server.tls.cert]);
  await lxd.lxcOk(['remote', 'add', 'w', server.base, '--protocol=simplestreams']);

  const listed = await lxd.lxcJson<LxcImage[]>(['image', 'list', 'w:']);
  const byFp = new Map(listed.map((i) => [i.fingerprint, i]));
  assert.deepEqual([...byFp.keys()].sort(), Object.values(fp).sort(), 'every public image is listed exactly once');
  assert.equal(listed.length, Object.keys(fp).length);
  assert.ok(!byFp.has(fpPrivate));

  assert.equal(byFp.get(fp.squashfs)!.type, 'container');
  assert.equal(byFp.get(fp.tarball)!.type, 'container');
  assert.equal(byFp.get(fp.vm)!.type, 'virtual-machine');
  assert.equal(byFp.get(fp.unified)!.type, 'container');
  assert.equal(byFp.get(fp.unifiedArm)!.architecture, 'aarch64');
  assert.equal(byFp.get(fp.squashfs)!.architecture, 'x86_64');
  assert.equal(byFp.get(fp.squashfs)!.properties.os, 'Testlinux');
  assert.equal(byFp.get(fp.squashfs)!.properties.release, '1.0');
  assert.equal(byFp.get(fp.squashfs)!.properties.type, 'squashfs');
  assert.equal(byFp.get(fp.vm)!.properties.type, 'disk-kvm.img');
  assert.equal(byFp.get(fp.squashfs)!.size, meta.size + squashfs.size);

  const aliasNames = (f: string) => byFp.get(f)!.aliases.map((a) => a.name);
  // The product aliases follow the newest build, squashfs preferred for containers (as on images:).
  for (const name of ['testlinux/1.0', 'testlinux/1.0/default', 'testlinux/1.0/amd64', 'sq']) {
    assert.ok(aliasNames(fp.squashfs).includes(name), `${name} on the squashfs image: ${aliasNames(fp.squashfs)}`);
  }
  assert.ok(aliasNames(fp.tarball).includes('tarball'));
  assert.ok(aliasNames(fp.unified).includes('uni'));
  assert.ok(aliasNames(fp.unified).includes('unitest/2'));

  // Exports give back the very files that were imported.
  const originals = new Set([meta.sha256, squashfs.sha256, rootTar.sha256, disk.sha256, unifiedAmd.sha256]);
  for (const alias of ['sq', 'tarball', 'uni']) {
    const out = join(work, `export-${alias}`);
    await mkdir(out);
    await lxd.lxcOk(['image', 'export', `w:${alias}`, out + '/']);
    const files = await readdir(out);
    assert.equal(files.length, alias === 'uni' ? 1 : 2, `${alias}: ${files}`);
    for (const file of files) {
      const { createHash } = await import('node:crypto');
      const sha = createHash('sha256').update(await readFile(join(out, file))).digest('hex');
      assert.ok(originals.has(sha), `${alias}: exported ${file} does not match an imported file`);
    }
  }
  const vmOut = join(work, 'export-vm');
  await mkdir(vmOut);
  await lxd.lxcOk(['image', 'export', `w:${fp.vm.slice(0, 16)}`, vmOut + '/']);
  assert.equal((await readdir(vmOut)).length, 2);

  // The daemon downloads, verifies and stores the same fingerprints.
  await lxd.lxcOk(['image', 'copy', 'w:testlinux/1.0', 'local:', '--alias', 'c-sq']);
  await lxd.lxcOk(['image', 'copy', 'w:tarball', 'local:', '--alias', 'c-tar']);
  await lxd.lxcOk(['image', 'copy', 'w:testlinux/1.0', 'local:', '--vm', '--alias', 'c-vm']);
  await lxd.lxcOk(['image', 'copy', 'w:uni', 'local:', '--alias', 'c-uni']);
  const local = await lxd.lxcJson<LxcImage[]>(['image', 'list', 'local:']);
  const localFp = (alias: string) => local.find((i) => i.aliases.some((a) => a.name === alias))?.fingerprint;
  assert.equal(localFp('c-sq'), fp.squashfs);
  assert.equal(localFp('c-tar'), fp.tarball);
  assert.equal(localFp('c-vm'), fp.vm);
  assert.equal(local.find((i) => i.fingerprint === fp.vm)?.type, 'virtual-machine');
  assert.equal(localFp('c-uni'), fp.unified);
  await assertPublishedValid(server);

  // Usage statistics, as the real clients download: each of the four images went out twice
  // (one `lxc image export`, one daemon copy), plus once to the checker above, which downloads
  // every published file (the arm64 image only that once); counted once each on its main file.
  await server.close(5_000);
  const stats = JSON.parse(await wharfOk(data, ['stats', '--by', 'image', '--format', 'json'])) as { fingerprint: string; file: number; downloads: number }[];
  assert.deepEqual(
    Object.fromEntries(stats.map((s) => [s.fingerprint, s.downloads])),
    { [fp.squashfs]: 3, [fp.tarball]: 3, [fp.vm]: 3, [fp.unified]: 3, [fp.unifiedArm]: 1 },
  );
});
