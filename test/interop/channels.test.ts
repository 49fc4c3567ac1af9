/**
 * Channels judged by the real clients: a channel's root is a remote URL with a path
 * (https://HOST/daily) that real incus 6.0.4 and lxc 5.0.2 list and copy from, each root with its
 * own newest version behind the same product alias; promoting a build into the default root
 * reaches an auto-updating copy on `incus image refresh`, and demoting it rolls that copy back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { incusUnavailable, startIncus } from '../helpers/incus.ts';
import { lxdUnavailable, startLxd } from '../helpers/lxd.ts';
import { until } from '../helpers/until.ts';
import { fetchRaw } from '../helpers/http.ts';

const missing = incusUnavailable() ?? lxdUnavailable();

interface Listed {
  fingerprint: string;
  aliases: { name: string }[];
}

test('real incus and lxc use a channel root as a remote; promote and demote reach an auto-updating copy on refresh', { skip: !process.env.CI && missing }, async (t) => {
  if (missing) assert.fail(`interop tests must run in CI: ${missing}`);
  const work = await tempDir(t);
  const data = join(work, 'data');
  const build = async (serial: string, seed: string) =>
    [(await buildMetadataTarball(work, { name: `m-${seed}.tar.xz`, properties: { os: 'Chan', release: '1', architecture: 'amd64', serial } })).path, (await buildSquashfs(work, { name: `r-${seed}.squashfs`, seed })).path];
  const stable = fingerprintFrom(await wharfOk(data, ['image', 'import', ...(await build('20260101_00:00', 'stable'))]));
  const daily = fingerprintFrom(await wharfOk(data, ['image', 'import', ...(await build('20260201_00:00', 'daily')), '--channel', 'daily']));
  const server = await serve(t, data);
  const published = async (root: string, fp: string, present: boolean) =>
    until(`${fp.slice(0, 12)} ${present ? 'in' : 'out of'} ${root || 'the default root'}`, async () => ((await fetchRaw(`${server.base}${root}/streams/v1/images.json`, { ca: server.tls.cert })).body.toString().includes(fp) === present ? true : undefined), 5_000);

  const incus = await startIncus(t, [server.tls.cert]);
  await incus.incusOk(['remote', 'add', 'w', server.base, '--protocol=simplestreams']);
  await incus.incusOk(['remote', 'add', 'wd', `${server.base}/daily`, '--protocol=simplestreams']);
  const fingerprints = async (remote: string) => (await incus.incusJson<Listed[]>(['image', 'list', `${remote}:`])).map((i) => i.fingerprint);
  assert.deepEqual(await fingerprints('w'), [stable]);
  assert.deepEqual(await fingerprints('wd'), [daily]);
  const info = async (ref: string) => /Fingerprint: ([0-9a-f]{64})/.exec(await incus.incusOk(['image', 'info', ref]))?.[1];
  assert.equal(await info('w:chan/1'), stable, "the product alias names each root's own newest version");
  assert.equal(await info('wd:chan/1'), daily);
  // Copied from the channel's root: the daemon downloads its files under /daily/files/.
  await incus.incusOk(['image', 'copy', 'wd:chan/1', 'local:', '--alias', 'from-daily']);
  const local = async (alias: string) => (await incus.incusJson<Listed[]>(['image', 'list', 'local:'])).find((i) => i.aliases.some((a) => a.name === alias))?.fingerprint;
  assert.equal(await local('from-daily'), daily);
  // Gone again, or the refresh below would find the build here and take this copy's source (the
  // daily root) along with it.
  await incus.incusOk(['image', 'delete', 'local:from-daily']);

  // An auto-updating copy of the default root's product alias follows promotions and demotions.
  await incus.incusOk(['image', 'copy', 'w:chan/1', 'local:', '--auto-update', '--alias', 'follows']);
  assert.equal(await local('follows'), stable);
  await wharfOk(data, ['image', 'promote', daily, '--channel', 'default']);
  await published('', daily, true);
  await incus.forgetIndexes();
  await incus.incusOk(['image', 'refresh', 'follows']);
  assert.equal(await local('follows'), daily, 'the promoted build reached the copy');
  await wharfOk(data, ['image', 'demote', daily, '--channel', 'default']);
  await published('', daily, false);
  await incus.forgetIndexes();
  await incus.incusOk(['image', 'refresh', 'follows']);
  assert.equal(await local('follows'), stable, 'demoting the newest build rolled the copy back');

  // The real lxc, on the channel's root too.
  const lxd = await startLxd(t, [server.tls.cert]);
  await lxd.lxcOk(['remote', 'add', 'ld', `${server.base}/daily`, '--protocol=simplestreams']);
  assert.deepEqual((await lxd.lxcJson<Listed[]>(['image', 'list', 'ld:'])).map((i) => i.fingerprint), [daily]);
  await lxd.lxcOk(['image', 'copy', 'ld:chan/1', 'local:', '--alias', 'lxd-daily']);
  assert.equal((await lxd.lxcJson<Listed[]>(['image', 'list', 'local:'])).find((i) => i.aliases.some((a) => a.name === 'lxd-daily'))?.fingerprint, daily);
});
