/**
 * Issue 4 end to end: wharf mirrors a static upstream laid out like images.linuxcontainers.org
 * (served by nginx), and the real lxc client and LXD daemon list and copy the mirrored images
 * from wharf, with their upstream aliases.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeLxcTree } from '../fixtures/lxc-tree.ts';
import { serve, tempDir, wharfOk } from '../helpers/env.ts';
import { lxdUnavailable, startLxd } from '../helpers/lxd.ts';
import { startNginx } from '../helpers/nginx.ts';
import { fetchRaw } from '../helpers/http.ts';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { assertPublishedValid } from '../helpers/published.ts';

const unavailable = lxdUnavailable();

test('real lxc uses images that wharf mirrored from an images.linuxcontainers.org-style upstream', { skip: !process.env.CI && unavailable }, async (t) => {
  if (unavailable) assert.fail(`interop tests must run in CI: ${unavailable}`);
  const work = await tempDir(t);
  const tree = join(work, 'upstream');
  const built = await writeLxcTree(tree, [
    { os: 'Testos', release: '1', arch: 'amd64', variant: 'default', serial: '20250101_05:24', vm: true, requirements: { secureboot: 'false' } },
    { os: 'Testos', release: '1', arch: 'amd64', variant: 'default', serial: '20250102_05:24', vm: true, requirements: { secureboot: 'false' } },
    { os: 'Testos', release: '1', arch: 'amd64', variant: 'cloud', serial: '20250102_05:24' },
    { os: 'Testos', release: '1', arch: 'arm64', variant: 'default', serial: '20250102_05:24' },
  ]);
  const upstream = await startNginx(t, tree, work);

  const data = join(work, 'data');
  await wharfOk(data, ['remote', 'add', 'lxc-images', upstream]);
  await wharfOk(data, ['mirror', 'add', 'testos', 'lxc-images', '--filter', 'os=testos', '--filter', 'architecture=amd64', '--keep', '1']);
  await wharfOk(data, ['mirror', 'sync']);
  const wanted = built.filter((i) => i.build.arch === 'amd64' && i.build.serial === '20250102_05:24');
  const local = JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])) as { fingerprint: string }[];
  assert.deepEqual(local.map((i) => i.fingerprint).sort(), wanted.map((i) => i.fingerprint).sort());

  const server = await serve(t, data);
  // Deltas come along with their version, verified, and are served like any file; listed only
  // beside their base version (clients skip any other), which this mirror, keeping one, lacks.
  const doc = JSON.parse((await fetchRaw(`${server.base}/streams/v1/images.json`, { ca: server.tls.cert })).body.toString());
  const items = Object.values(doc.products['testos:1:amd64:default'].versions as Record<string, { items: Record<string, { ftype: string; path: string; sha256: string; delta_base?: string }> }>)[0]!.items;
  assert.equal(Object.values(items).find((i) => i.ftype === 'squashfs.vcdiff'), undefined, 'its base (20200101_00:00) is not listed here');
  const upstreamDoc = JSON.parse(await readFile(join(tree, 'streams/v1/images.json'), 'utf8')) as { products: Record<string, { versions: Record<string, { items: Record<string, { ftype: string; sha256: string }> }> }> };
  const mirrored = Object.values(upstreamDoc.products['testos:1:amd64:default']!.versions['20250102_05:24']!.items).find((i) => i.ftype === 'squashfs.vcdiff')!;
  const deltaBody = (await fetchRaw(`${server.base}/files/${mirrored.sha256}.vcdiff`, { ca: server.tls.cert })).body;
  assert.equal(createHash('sha256').update(deltaBody).digest('hex'), mirrored.sha256, 'the mirrored delta is stored and served');

  const lxd = await startLxd(t, [server.tls.cert]);
  await lxd.lxcOk(['remote', 'add', 'w', server.base, '--protocol=simplestreams']);
  const listed = await lxd.lxcJson<{ fingerprint: string; type: string; aliases: { name: string }[]; properties: Record<string, string> }[]>(['image', 'list', 'w:']);
  assert.deepEqual(listed.map((i) => i.fingerprint).sort(), wanted.map((i) => i.fingerprint).sort());
  const squashfs = wanted.find((i) => i.ftype === 'squashfs' && i.build.variant === 'default')!;
  const vm = wanted.find((i) => i.type === 'virtual-machine')!;
  const sqListed = listed.find((i) => i.fingerprint === squashfs.fingerprint)!;
  assert.ok(sqListed.aliases.some((a) => a.name === 'testos/1'), 'upstream aliases are served');
  assert.equal(sqListed.properties['requirements.secureboot'], 'false');
  assert.equal(listed.find((i) => i.fingerprint === vm.fingerprint)!.type, 'virtual-machine');

  await lxd.lxcOk(['image', 'copy', 'w:testos/1', 'local:', '--alias', 'm-ct']);
  await lxd.lxcOk(['image', 'copy', 'w:testos/1', 'local:', '--vm', '--alias', 'm-vm']);
  await lxd.lxcOk(['image', 'copy', 'w:testos/1/cloud', 'local:', '--alias', 'm-cloud']);
  const copied = await lxd.lxcJson<{ fingerprint: string; aliases: { name: string }[] }[]>(['image', 'list', 'local:']);
  const fp = (alias: string) => copied.find((i) => i.aliases.some((a) => a.name === alias))?.fingerprint;
  assert.equal(fp('m-ct'), squashfs.fingerprint);
  assert.equal(fp('m-vm'), vm.fingerprint);
  assert.equal(fp('m-cloud'), wanted.find((i) => i.build.variant === 'cloud' && i.ftype === 'squashfs')!.fingerprint);
  await assertPublishedValid(server);
});
