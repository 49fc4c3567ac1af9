/**
 * Test hooks (`test_hooks:` in config.yaml, `wharf image test IMAGE`, `wharf image tests IMAGE`):
 * a hook sees the image's files and facts in WHARF_* variables, exit 0 passes, a failing hook
 * fails the image, a timeout fails it (and kills what the hook started), a flaky hook passes on a
 * retry, and every attempt is kept with the end of what it printed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, tempDir, wharf, wharfOk } from '../helpers/env.ts';

test('test hooks: the files they see, a failure, a timeout, a flaky hook passing on a retry, every attempt kept', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Hooked', release: '1', architecture: 'amd64', serial: '20261207_01:00' } });
  const root = await buildSquashfs(work, { seed: 'hooked' });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, root.path]));
  assert.equal((await wharf(data, ['image', 'test', fp])).code, 64, 'no hooks configured: said, not passed');

  const seen = join(work, 'seen.txt');
  const flaky = join(work, 'flaky-count');
  const orphan = join(work, 'orphan.txt');
  const hooks = (entries: string) => writeFile(join(data, 'config.yaml'), `test_hooks:\n${entries}`);
  await hooks(
    [
      `  - name: sees\n    command: 'sha256sum "$WHARF_IMAGE_METADATA" "$WHARF_IMAGE_ROOTFS" > ${seen}; echo "$WHARF_IMAGE_FINGERPRINT $WHARF_IMAGE_TYPE $WHARF_IMAGE_PRODUCT $WHARF_IMAGE_VERSION" >> ${seen}'`,
      `  - name: flaky\n    command: 'n=$(cat ${flaky} 2>/dev/null || echo 0); echo $((n+1)) > ${flaky}; echo "try $n"; [ "$n" -ge 1 ]'\n    retries: 2`,
    ].join('\n') + '\n',
  );
  const passed = await wharf(data, ['image', 'test', fp]);
  assert.equal(passed.code, 0, passed.stdout + passed.stderr);
  assert.match(passed.stdout, /^sees: passed$/m);
  assert.match(passed.stdout, /^flaky: passed \(attempt 2\)$/m);
  const lines = (await readFile(seen, 'utf8')).trim().split('\n');
  assert.equal(lines[0]!.split(/\s+/)[0], meta.sha256, 'the metadata tarball itself');
  assert.equal(lines[1]!.split(/\s+/)[0], root.sha256, 'the rootfs itself');
  assert.equal(lines[2], `${fp} container hooked:1:amd64:default 20261207_01:00`);

  await hooks(
    [
      `  - name: fails\n    command: 'echo "\\033[31mbroken\\033[0m: no /sbin/init" >&2; exit 3'`,
      `  - name: hangs\n    command: '(sleep 3; echo late > ${orphan}) & sleep 30'\n    timeout: 1s`,
    ].join('\n') + '\n',
  );
  const started = Date.now();
  const failed = await wharf(data, ['image', 'test', fp]);
  assert.equal(failed.code, 65, failed.stdout + failed.stderr);
  assert.ok(Date.now() - started < 15_000, 'the timeout cut the hook');
  assert.match(failed.stdout, /^fails: failed$/m);
  assert.match(failed.stdout, /^hangs: timed out$/m);
  assert.match(failed.stderr, /failed fails, hangs/);

  // Every attempt, in order; the logs with their controls shown, not obeyed.
  const results = JSON.parse(await wharfOk(data, ['image', 'tests', fp, '--format', 'json', '--log'])) as { hook: string; attempt: number; outcome: string; exitCode: number | null; log: string }[];
  assert.deepEqual(
    results.map((r) => [r.hook, r.attempt, r.outcome, r.exitCode]),
    [
      ['sees', 1, 'passed', 0],
      ['flaky', 1, 'failed', 1],
      ['flaky', 2, 'passed', 0],
      ['fails', 1, 'failed', 3],
      ['hangs', 1, 'timed out', null],
    ],
  );
  assert.match(results.find((r) => r.hook === 'fails')!.log, /broken.*no \/sbin\/init/);
  const shown = await wharfOk(data, ['image', 'tests', fp, '--log']);
  assert.match(shown, /== fails, attempt 1: failed .*\n\\x1b\[31mbroken\\x1b\[0m: no \/sbin\/init/);
  assert.ok(!shown.includes('\u001b'), 'no raw escape reaches the terminal');
  // What the hook started in the background was killed with it.
  await new Promise((r) => setTimeout(r, Math.max(0, started + 4_000 - Date.now())));
  assert.equal(await readFile(orphan, 'utf8').catch(() => 'never written'), 'never written');

  // A bad hook list is a clear error at start.
  await hooks('  - name: nameless\n    timeout: soon\n');
  const bad = await wharf(data, ['image', 'test', fp]);
  assert.equal(bad.code, 78);
  assert.match(bad.stderr, /test_hooks: nameless: command must be a non-empty string/);
});
