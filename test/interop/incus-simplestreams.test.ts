/**
 * The real Incus 6.0.4 client and daemon use wharf as a simplestreams remote over HTTPS: every
 * image kind is listed, inspected, exported byte for byte, copied into the daemon by alias and by
 * fingerprint (container and VM), and a container is launched from wharf.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildQcow2, buildRootfsTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { incusUnavailable, prepareForInstances, startIncus } from '../helpers/incus.ts';
import { assertPublishedValid } from '../helpers/published.ts';

interface IncusImage {
  fingerprint: string;
  type: string;
  architecture: string;
  aliases: { name: string }[];
  properties: Record<string, string>;
}

const unavailable = incusUnavailable();

test('real incus lists, exports, copies and launches every image kind over simplestreams', { skip: !process.env.CI && unavailable }, async (t) => {
  if (unavailable) assert.fail(`interop tests must run in CI: ${unavailable}`);
  const work = await tempDir(t);
  const data = join(work, 'data');

  const props = { os: 'Testlinux', release: '1.0', variant: 'default', architecture: 'amd64', description: 'Testlinux 1.0' };
  const meta = await buildMetadataTarball(work, { properties: props, withTemplates: true });
  const squashfs = await buildSquashfs(work, { seed: 'sq' });
  const rootTar = await buildRootfsTarball(work, { compression: 'xz', seed: 'tar' });
  const disk = await buildQcow2(work, { seed: 'vm' });
  const unified = await buildUnified(work, { compression: 'gzip', properties: { os: 'Unitest', release: '2', architecture: 'amd64', description: 'Unitest 2' } });
  const unifiedVm = await buildUnified(work, { vm: true, name: 'unified-vm.tar.gz', properties: { os: 'Univm', release: '3', architecture: 'amd64', description: 'Univm 3' } });

  const fp = {
    squashfs: fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, squashfs.path, '--alias', 'sq'])),
    tarball: fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, rootTar.path, '--alias', 'tarball'])),
    vm: fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, disk.path, '--alias', 'vm'])),
    unified: fingerprintFrom(await wharfOk(data, ['image', 'import', unified.path, '--alias', 'uni'])),
  };
  const fpUnifiedVm = fingerprintFrom(await wharfOk(data, ['image', 'import', unifiedVm.path, '--alias', 'uni-vm']));
  // Built as distrobuilder builds it: the codename is the release.
  const bookwormMeta = await buildMetadataTarball(work, { name: 'bookworm.tar.xz', properties: { os: 'Debian', release: 'bookworm', architecture: 'amd64' } });
  const fpBookworm = fingerprintFrom(await wharfOk(data, ['image', 'import', bookwormMeta.path, squashfs.path]));
  // A variant with a "+", as images.linuxcontainers.org names FreeBSD's.
  const zfsMeta = await buildMetadataTarball(work, { name: 'zfs.tar.xz', properties: { os: 'FreeBSD', release: '14', variant: 'default+zfs', architecture: 'amd64' } });
  const fpZfs = fingerprintFrom(await wharfOk(data, ['image', 'import', zfsMeta.path, squashfs.path]));

  const server = await serve(t, data);
  const incus = await startIncus(t, [server.tls.cert]);
  await incus.incusOk(['remote', 'add', 'w', server.base, '--protocol=simplestreams']);

  const listed = await incus.incusJson<IncusImage[]>(['image', 'list', 'w:']);
  const byFp = new Map(listed.map((i) => [i.fingerprint, i]));
  // Incus 6.0 reads a unified VM tarball as a container (it ignores combined_type): it must not be
  // offered one it cannot use.
  assert.ok(!listed.some((i) => i.fingerprint === fpUnifiedVm && i.type === 'container'), 'a unified VM image offered to Incus 6.0 as a container');
  for (const f of Object.values(fp)) assert.ok(byFp.has(f), `${f} is listed`);
  assert.equal(byFp.get(fp.squashfs)!.type, 'container');
  assert.equal(byFp.get(fp.vm)!.type, 'virtual-machine');
  assert.equal(byFp.get(fp.unified)!.type, 'container');

  // Every alias names the image it was given to, for either client call (with or without --vm).
  const infoFingerprint = async (ref: string, vm = false) => /Fingerprint: ([0-9a-f]{64})/.exec(await incus.incusOk(['image', 'info', ref, ...(vm ? ['--vm'] : [])]))?.[1];
  assert.equal(await infoFingerprint('w:sq'), fp.squashfs);
  assert.equal(await infoFingerprint('w:tarball'), fp.tarball);
  assert.equal(await infoFingerprint('w:vm'), fp.vm, 'a hand alias of a VM image names that VM, not the container of the same build');
  assert.equal(await infoFingerprint('w:vm', true), fp.vm);
  assert.equal(await infoFingerprint('w:testlinux/1.0', true), fp.vm, 'the product alias still finds the VM');
  assert.equal(await infoFingerprint('w:uni'), fp.unified);
  // A release answers to its codename and its number, as on images.linuxcontainers.org.
  assert.equal(await infoFingerprint('w:debian/bookworm'), fpBookworm);
  assert.equal(await infoFingerprint('w:debian/12'), fpBookworm);
  assert.equal(await infoFingerprint('w:freebsd/14/default+zfs'), fpZfs);
  assert.notEqual((await incus.incus(['image', 'info', 'w:freebsd/14'])).code, 0, 'a variant other than default has no short alias');

  // Exports give back the very files that were imported.
  const originals = new Set([meta.sha256, squashfs.sha256, rootTar.sha256, disk.sha256, unified.sha256]);
  for (const ref of ['sq', 'tarball', 'uni', fp.vm.slice(0, 16)]) {
    const out = join(work, `export-${ref}`);
    await mkdir(out);
    await incus.incusOk(['image', 'export', `w:${ref}`, out + '/', ...(ref === fp.vm.slice(0, 16) ? ['--vm'] : [])]);
    const files = await readdir(out);
    assert.equal(files.length, ref === 'uni' ? 1 : 2, `${ref}: ${files}`);
    for (const file of files) {
      const sha = createHash('sha256').update(await readFile(join(out, file))).digest('hex');
      assert.ok(originals.has(sha), `${ref}: exported ${file} does not match an imported file`);
    }
  }

  // The daemon downloads, verifies and stores the same fingerprints, by alias and by fingerprint.
  await incus.incusOk(['image', 'copy', 'w:testlinux/1.0', 'local:', '--alias', 'c-sq']);
  await incus.incusOk(['image', 'copy', `w:${fp.tarball}`, 'local:', '--alias', 'c-tar']);
  await incus.incusOk(['image', 'copy', 'w:testlinux/1.0', 'local:', '--vm', '--alias', 'c-vm']);
  await incus.incusOk(['image', 'copy', 'w:vm', 'local:', '--vm', '--alias', 'c-vm-alias']);
  await incus.incusOk(['image', 'copy', 'w:uni', 'local:', '--alias', 'c-uni']);
  const local = await incus.incusJson<IncusImage[]>(['image', 'list', 'local:']);
  const localFp = (alias: string) => local.find((i) => i.aliases.some((a) => a.name === alias))?.fingerprint;
  assert.equal(localFp('c-sq'), fp.squashfs);
  assert.equal(localFp('c-tar'), fp.tarball);
  assert.equal(localFp('c-vm'), fp.vm);
  assert.equal(localFp('c-vm-alias'), fp.vm);
  assert.equal(local.find((i) => i.fingerprint === fp.vm)?.type, 'virtual-machine');
  assert.equal(localFp('c-uni'), fp.unified);

  // A container from wharf starts, with its templates applied.
  await prepareForInstances(incus);
  await incus.incusOk(['launch', 'w:sq', 'c1']);
  const seed = await incus.incusOk(['exec', 'c1', '--', '/bin/cat', '/etc/wharf-seed']);
  assert.equal(seed.trim(), 'sq');
  assert.equal((await incus.incusOk(['exec', 'c1', '--', '/bin/cat', '/etc/hostname'])).trim(), 'c1', 'the hostname template was applied');
  await incus.incusOk(['delete', '--force', 'c1']);
  await assertPublishedValid(server);
});
