/**
 * Deltas judged by the real daemons (with xdelta3 on their PATH, as the test machine has it): an
 * auto-updating copy of version 1, refreshed once version 2 entered the channel with its delta,
 * fetches the `.vcdiff` and not version 2's rootfs (the server's access log says so), and ends
 * with version 2's fingerprint: incus 6.0.4 and LXD 5.0.2 alike.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
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
