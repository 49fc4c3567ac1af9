/**
 * Ubuntu images for Incus users: an LXD-only upstream in the layout of the `ubuntu:` remote
 * (cloud-images: `lxd.tar.xz` items only, VM disks as `disk1.img`), which Incus clients cannot
 * read at all, mirrored by wharf and served to the real Incus client and daemon with the same
 * bytes and fingerprints: listed, and copied as a container and as a VM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { writeLxcTree } from '../fixtures/lxc-tree.ts';
import { serve, tempDir, wharfOk } from '../helpers/env.ts';
import { incusUnavailable, startIncus } from '../helpers/incus.ts';
import { startNginx } from '../helpers/nginx.ts';
import { assertPublishedValid } from '../helpers/published.ts';

const unavailable = incusUnavailable();

interface IncusImage {
  fingerprint: string;
  type: string;
  aliases: { name: string }[];
}

test('real incus uses images wharf mirrored from an LXD-only (cloud-images style) upstream', { skip: !process.env.CI && unavailable }, async (t) => {
  if (unavailable) assert.fail(`interop tests must run in CI: ${unavailable}`);
  const work = await tempDir(t);
  const tree = join(work, 'upstream');
  const built = await writeLxcTree(tree, [{ os: 'Ubuntu', release: '24.04', arch: 'amd64', variant: 'default', serial: '20250101', vm: true }], 'cloud-images');
  const upstream = await startNginx(t, tree, work);

  const data = join(work, 'data');
  await wharfOk(data, ['remote', 'add', 'cloud', upstream]);
  await wharfOk(data, ['mirror', 'add', 'ubuntu', 'cloud']);
  await wharfOk(data, ['mirror', 'sync']);
  const server = await serve(t, data);

  const incus = await startIncus(t, [server.tls.cert]);
  // The upstream offers Incus nothing: Incus reads only incus.tar.xz and incus_combined.tar.gz items.
  const upstreamDoc = await readFile(join(tree, 'streams/v1/images.json'), 'utf8');
  assert.doesNotMatch(upstreamDoc, /"ftype":\s*"incus/);

  await incus.incusOk(['remote', 'add', 'w', server.base, '--protocol=simplestreams']);
  const listed = await incus.incusJson<IncusImage[]>(['image', 'list', 'w:']);
  assert.deepEqual(listed.map((i) => i.fingerprint).sort(), built.map((i) => i.fingerprint).sort(), 'every upstream image, same fingerprints');

  const container = built.find((i) => i.ftype === 'squashfs')!;
  const vm = built.find((i) => i.type === 'virtual-machine')!;
  await incus.incusOk(['image', 'copy', 'w:24.04', 'local:', '--alias', 'ct']);
  await incus.incusOk(['image', 'copy', 'w:ubuntu-24.04', 'local:', '--vm', '--alias', 'vm']);
  const local = await incus.incusJson<IncusImage[]>(['image', 'list', 'local:']);
  const fp = (alias: string) => local.find((i) => i.aliases.some((a) => a.name === alias));
  assert.equal(fp('ct')?.fingerprint, container.fingerprint);
  assert.equal(fp('vm')?.fingerprint, vm.fingerprint);
  assert.equal(fp('vm')?.type, 'virtual-machine');
  await assertPublishedValid(server);
});
