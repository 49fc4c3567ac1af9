/**
 * Deltas made as versions enter a channel (core/deltas.ts): one squashfs VCDIFF from the previous
 * version of the product in that channel, checked before it is recorded, listed only beside its
 * base version, never for a VM, never a second one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildQcow2, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { until } from '../helpers/until.ts';

interface Products {
  products: Record<string, { versions: Record<string, { items: Record<string, { ftype: string; path: string; sha256: string; size: number; delta_base?: string }> }> }>;
}

test('a version entering a channel gets one checked delta from the previous one there, listed only beside its base', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const build = async (serial: string, seed: string, vm = false) => [
    (await buildMetadataTarball(work, { name: `m-${seed}.tar.xz`, properties: { os: 'Delta', release: '1', architecture: 'amd64', serial } })).path,
    (vm ? await buildQcow2(work, { name: `d-${seed}.qcow2`, seed }) : await buildSquashfs(work, { name: `r-${seed}.squashfs`, seed })).path,
  ];
  const importing = async (files: string[], ...args: string[]) => {
    const r = await wharf(data, ['image', 'import', ...files, ...args]);
    assert.equal(r.code, 0, r.stderr);
    return { fp: fingerprintFrom(r.stdout), said: r.stderr };
  };
  const v1 = await importing(await build('20260101_00:00', 'v1'), '--channel', 'daily');
  assert.doesNotMatch(v1.said, /Delta from/, 'the first version has nothing to differ from');
  const v2 = await importing(await build('20260102_00:00', 'v2'), '--channel', 'daily');
  assert.match(v2.said, /Delta from version 20260101_00:00: /);
  await importing(await build('20260101_00:00', 'vm1', true), '--channel', 'daily');
  const vm2 = await importing(await build('20260102_00:00', 'vm2', true), '--channel', 'daily');
  // --no-delta: none made (a third container version, imported without).
  const v3 = await importing(await build('20260103_00:00', 'v3'), '--channel', 'weekly', '--no-delta');
  await wharfOk(data, ['image', 'promote', v3.fp, '--channel', 'daily', '--no-delta']);
  assert.doesNotMatch(v3.said, /Delta from/);
  assert.doesNotMatch(vm2.said, /Delta from/, 'no VM deltas');

  const server = await serve(t, data, { processes: 1 });
  const get = (path: string) => fetchRaw(server.base + path, { ca: server.tls.cert });
  const items = async (root: string) => {
    const doc = JSON.parse((await get(`${root}/streams/v1/images.json`)).body.toString()) as Products;
    return Object.values(doc.products).flatMap((p) => Object.entries(p.versions).flatMap(([version, v]) => Object.values(v.items).map((i) => ({ ...i, version }))));
  };
  const daily = await items('/daily');
  const deltas = daily.filter((i) => i.ftype.endsWith('.vcdiff'));
  assert.equal(deltas.length, 1, 'one delta: the container v2 from v1, none for the VM, none for v3 (--no-delta)');
  const [delta] = deltas as [(typeof deltas)[0]];
  assert.equal(delta.ftype, 'squashfs.vcdiff');
  assert.equal(delta.version, '20260102_00:00');
  assert.equal(delta.delta_base, '20260101_00:00');
  // What a client does with it: the base's rootfs and the delta give the new rootfs, exactly.
  const rootOf = (version: string) => daily.find((i) => i.version === version && i.ftype === 'squashfs')!;
  const [base, patch] = [await get(`/daily/${rootOf('20260101_00:00').path}`), await get(`/daily/${delta.path}`)];
  assert.equal(createHash('sha256').update(patch.body).digest('hex'), delta.sha256);
  await writeFile(join(work, 'base'), base.body);
  await writeFile(join(work, 'patch'), patch.body);
  const decoded = spawnSync('xdelta3', ['-d', '-c', '-s', join(work, 'base'), join(work, 'patch')], { maxBuffer: 1 << 30 });
  assert.equal(decoded.status, 0, String(decoded.stderr));
  assert.equal(createHash('sha256').update(decoded.stdout).digest('hex'), rootOf('20260102_00:00').sha256);

  // Promoted alone into the default root, v2 keeps its one delta, which the root does not list:
  // its base is not there.
  const promoted = await wharf(data, ['image', 'promote', v2.fp, '--channel', 'default']);
  assert.equal(promoted.code, 0, promoted.stderr);
  assert.doesNotMatch(promoted.stderr, /Delta from/, 'one delta per version');
  await until('v2 in the default root', async () => ((await items('')).some((i) => i.version === '20260102_00:00') ? true : undefined), 5_000);
  assert.equal((await items('')).filter((i) => i.ftype.endsWith('.vcdiff')).length, 0);
  // v1 promoted too: the delta is listed there again, beside its base.
  await wharfOk(data, ['image', 'promote', v1.fp, '--channel', 'default']);
  await until('the delta beside its base', async () => ((await items('')).some((i) => i.ftype === 'squashfs.vcdiff') ? true : undefined), 5_000);
  // The image check covers deltas too.
  assert.equal((await wharf(data, ['image', 'verify'])).code, 0);
});
