/**
 * Deltas judged by the real daemons (with xdelta3 on their PATH, as the test machine has it): an
 * auto-updating copy of version 1, refreshed once version 2 entered the channel with its delta,
 * fetches the `.vcdiff` and not version 2's rootfs (the server's access log says so), and ends
 * with version 2's fingerprint: incus 6.0.4 and LXD 5.0.2 alike. Without xdelta3 on its PATH
 * the incus daemon fetches the whole rootfs and still ends on version 2; a VM copy of version 2
 * with the container of version 1 in the store succeeds (no VM delta is ever listed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildQcow2, buildSquashfs } from '../fixtures/images.ts';
import { capturingLogger, fingerprintFrom, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { incusUnavailable, startIncus } from '../helpers/incus.ts';
import { lxdUnavailable, startLxd } from '../helpers/lxd.ts';
import { until } from '../helpers/until.ts';
import { fetchRaw } from '../helpers/http.ts';

const missing = incusUnavailable() ?? lxdUnavailable() ?? (spawnSync('xdelta3', ['-V']).status === 0 ? undefined : 'xdelta3 is not installed (Debian package xdelta3)');

interface Listed {
  fingerprint: string;
  aliases: { name: string }[];
}

test('real incus and lxc refresh an auto-updating copy through the delta, not the whole rootfs', { skip: !process.env.CI && missing }, async (t) => {
  if (missing) assert.fail(`interop tests must run in CI: ${missing}`);
  const work = await tempDir(t);
  const data = join(work, 'data');
  const build = async (serial: string, seed: string) => [
    (await buildMetadataTarball(work, { name: `m-${seed}.tar.xz`, properties: { os: 'Patched', release: '1', architecture: 'amd64', serial } })).path,
    await buildSquashfs(work, { name: `r-${seed}.squashfs`, seed, padMiB: 1 }),
  ] as const;
  const [meta1, root1] = await build('20260101_00:00', 'v1');
  const v1 = fingerprintFrom(await wharfOk(data, ['image', 'import', meta1, root1.path, '--channel', 'daily']));
  const logs = capturingLogger();
  const server = await serve(t, data, { processes: 1, log: logs.log });
  const requested = () => logs.records.filter((r) => r.msg === 'request' && r.status === 200).map((r) => String(r.path));

  const incus = await startIncus(t, [server.tls.cert]);
  const lxd = await startLxd(t, [server.tls.cert]);
  await incus.incusOk(['remote', 'add', 'w', `${server.base}/daily`, '--protocol=simplestreams']);
  await lxd.lxcOk(['remote', 'add', 'w', `${server.base}/daily`, '--protocol=simplestreams']);
  await incus.incusOk(['image', 'copy', 'w:patched/1', 'local:', '--auto-update', '--alias', 'follows']);
  await lxd.lxcOk(['image', 'copy', 'w:patched/1', 'local:', '--auto-update', '--alias', 'follows']);

  const [meta2, root2] = await build('20260102_00:00', 'v2');
  const imported = await wharf(data, ['image', 'import', meta2, root2.path, '--channel', 'daily']);
  assert.match(imported.stderr, /Delta from version 20260101_00:00/);
  const v2 = fingerprintFrom(imported.stdout);
  await until('v2 published with its delta', async () => ((await fetchRaw(`${server.base}/daily/streams/v1/images.json`, { ca: server.tls.cert })).body.toString().includes('.vcdiff') ? true : undefined), 5_000);
  await incus.forgetIndexes();

  const before = requested().length;
  await incus.incusOk(['image', 'refresh', 'follows']);
  const local = async (list: () => Promise<Listed[]>) => (await list()).find((i) => i.aliases.some((a) => a.name === 'follows'))?.fingerprint;
  assert.equal(await local(() => incus.incusJson<Listed[]>(['image', 'list', 'local:'])), v2, 'incus refreshed to v2');
  const byIncus = requested().slice(before);
  assert.ok(byIncus.some((p) => p.endsWith('.vcdiff')), `incus fetched the delta: ${byIncus}`);
  assert.ok(!byIncus.some((p) => p.includes(root2.sha256)), `and not v2's rootfs: ${byIncus}`);

  // LXD keeps the index for an hour too: forgotten the same way.
  const lxdCache = join(lxd.env.LXD_DIR!, 'cache');
  for (const entry of await readdir(lxdCache).catch(() => [])) if (entry !== 'resources') await rm(join(lxdCache, entry), { recursive: true, force: true });
  const lxdBefore = requested().length;
  await lxd.lxcOk(['image', 'refresh', 'follows']);
  assert.equal(await local(() => lxd.lxcJson<Listed[]>(['image', 'list', 'local:'])), v2, 'lxc refreshed to v2');
  const byLxd = requested().slice(lxdBefore);
  assert.ok(byLxd.some((p) => p.endsWith('.vcdiff')), `LXD fetched the delta: ${byLxd}`);
  assert.ok(!byLxd.some((p) => p.includes(root2.sha256)), `and not v2's rootfs: ${byLxd}`);
});

test('without xdelta3 the real incus daemon refreshes through the whole rootfs; a VM copy with the container version cached succeeds', { skip: !process.env.CI && missing }, async (t) => {
  if (missing) assert.fail(`interop tests must run in CI: ${missing}`);
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = async (serial: string, seed: string) =>
    (await buildMetadataTarball(work, { name: `m-${seed}.tar.xz`, properties: { os: 'Patched', release: '1', architecture: 'amd64', serial } })).path;
  const root1 = await buildSquashfs(work, { name: 'r-v1.squashfs', seed: 'v1', padMiB: 1 });
  const v1 = fingerprintFrom(await wharfOk(data, ['image', 'import', await meta('20260101_00:00', 'v1'), root1.path]));
  const logs = capturingLogger();
  const server = await serve(t, data, { processes: 1, log: logs.log });
  const requested = () => logs.records.filter((r) => r.msg === 'request' && r.status === 200).map((r) => String(r.path));

  const plain = await startIncus(t, [server.tls.cert], { without: ['xdelta3'] });
  await plain.incusOk(['remote', 'add', 'w', server.base, '--protocol=simplestreams']);
  await plain.incusOk(['image', 'copy', 'w:patched/1', 'local:', '--auto-update', '--alias', 'follows']);

  // Version 2: a container with its delta from version 1, and a VM (never a VM delta).
  const root2 = await buildSquashfs(work, { name: 'r-v2.squashfs', seed: 'v2', padMiB: 1 });
  const imported = await wharf(data, ['image', 'import', await meta('20260102_00:00', 'v2'), root2.path]);
  assert.match(imported.stderr, /Delta from version 20260101_00:00/);
  const v2 = fingerprintFrom(imported.stdout);
  const disk = await buildQcow2(work, { name: 'v2.qcow2', seed: 'v2-vm' });
  const vm = fingerprintFrom(await wharfOk(data, ['image', 'import', await meta('20260102_00:00', 'v2vm'), disk.path]));
  await until('v2 published with its delta', async () => ((await fetchRaw(`${server.base}/streams/v1/images.json`, { ca: server.tls.cert })).body.toString().includes('.vcdiff') ? true : undefined), 5_000);
  await plain.forgetIndexes();

  const before = requested().length;
  await plain.incusOk(['image', 'refresh', 'follows']);
  const listed = await plain.incusJson<Listed[]>(['image', 'list', 'local:']);
  assert.equal(listed.find((i) => i.aliases.some((a) => a.name === 'follows'))?.fingerprint, v2, 'refreshed to v2');
  const fetched = requested().slice(before);
  assert.ok(fetched.some((p) => p.includes(root2.sha256)), `the whole rootfs: ${fetched}`);
  assert.ok(!fetched.some((p) => p.endsWith('.vcdiff')), `no delta without xdelta3: ${fetched}`);

  // The VM of version 2, with the container of version 1 still in the store... and with xdelta3 on
  // the daemon's PATH, where Incus would take a VM delta against the container's rootfs.
  const withDelta = await startIncus(t, [server.tls.cert]);
  await withDelta.incusOk(['remote', 'add', 'w', server.base, '--protocol=simplestreams']);
  await withDelta.incusOk(['image', 'copy', `w:${v1}`, 'local:']);
  await withDelta.incusOk(['image', 'copy', 'w:patched/1', 'local:', '--vm', '--alias', 'vm']);
  const vms = await withDelta.incusJson<Listed[]>(['image', 'list', 'local:']);
  assert.equal(vms.find((i) => i.aliases.some((a) => a.name === 'vm'))?.fingerprint, vm, 'the VM copy succeeded whole');
});
