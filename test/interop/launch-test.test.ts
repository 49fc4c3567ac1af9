/**
 * `wharf test IMAGE` against a real Incus 6.0.4 daemon: a busybox image whose init keeps running
 * passes as an unprivileged and a privileged container; the same without an init fails; nothing
 * of either run is left in the daemon.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { incusUnavailable, prepareForInstances, startIncus } from '../helpers/incus.ts';

const missing = incusUnavailable();

test('the launch test passes a bootable image and fails one without init, on a real Incus daemon', { skip: !process.env.CI && missing }, async (t) => {
  if (missing) assert.fail(`interop tests must run in CI: ${missing}`);
  const work = await tempDir(t);
  const data = join(work, 'data');
  const image = async (seed: string, init: boolean) =>
    fingerprintFrom(
      await wharfOk(data, ['image', 'import', (await buildMetadataTarball(work, { name: `m-${seed}.tar.xz`, properties: { os: `Boot${seed}`, release: '1', architecture: 'amd64' } })).path, (await buildSquashfs(work, { name: `r-${seed}.squashfs`, seed, init })).path]),
    );
  const [bootable, broken] = [await image('good', true), await image('broken', false)];
  const incus = await startIncus(t, []);
  await prepareForInstances(incus);
  const run = (fp: string) => wharf(data, ['test', fp, '--client', 'incus'], { env: incus.env, timeoutMs: 600_000 });

  const passed = await run(bootable);
  assert.equal(passed.code, 0, passed.stdout + passed.stderr);
  assert.match(passed.stdout, /^unprivileged: passed \(started, ran a command, stopped in \d+ s\)$/m);
  assert.match(passed.stdout, /^privileged: passed /m);

  const failed = await run(broken);
  assert.equal(failed.code, 65, failed.stdout + failed.stderr);
  assert.match(failed.stdout, /^unprivileged: failed \(it did not start: /m);
  assert.match(failed.stderr, /failed its launch test: unprivileged, privileged/);

  // Nothing of either run stays in the daemon.
  assert.deepEqual(await incus.incusJson<unknown[]>(['list']), []);
  assert.deepEqual(await incus.incusJson<unknown[]>(['image', 'list']), []);
});
