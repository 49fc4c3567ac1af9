/**
 * Builders pushing with the real clients: `lxc image import META ROOTFS REMOTE:` and
 * `incus image import ... REMOTE:` with a client certificate trusted for the staging channel only.
 * The image lands in staging, private; the public index shows nothing of it; a certificate trusted
 * for another channel cannot push. Then the pipeline: a push passes the test hooks and the default
 * channel's automatic gate publishes it, for real readers of the public index.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { serve, tempDir, wharfOk } from '../helpers/env.ts';
import { incusUnavailable, startIncus } from '../helpers/incus.ts';
import { lxdUnavailable, startLxd } from '../helpers/lxd.ts';
import { fetchRaw } from '../helpers/http.ts';
import { until } from '../helpers/until.ts';

const missing = incusUnavailable() ?? lxdUnavailable();

test('real lxc and incus push into staging with a certificate trusted for it; another certificate cannot', { skip: !process.env.CI && missing }, async (t) => {
  if (missing) assert.fail(`interop tests must run in CI: ${missing}`);
  const work = await tempDir(t);
  const data = join(work, 'data');
  const server = await serve(t, data);
  const build = async (seed: string) => [
    (await buildMetadataTarball(work, { name: `m-${seed}.tar.xz`, properties: { os: 'Built', release: seed, architecture: 'amd64' } })).path,
    (await buildSquashfs(work, { name: `r-${seed}.squashfs`, seed })).path,
  ];
  /** A client certificate written where the client looks for its own, trusted for `channel`. */
  const certify = async (dir: string, name: string, channel: string) => {
    const made = await selfsigned.generate([{ name: 'commonName', value: name }], { keyType: 'ec' });
    await writeFile(join(dir, 'client.crt'), made.cert);
    await writeFile(join(dir, 'client.key'), made.private, { mode: 0o600 });
    await wharfOk(data, ['trust', 'add', join(dir, 'client.crt'), '--channel', channel]);
  };
  const staged = async () => (JSON.parse(await wharfOk(data, ['image', 'list', 'channel=staging', '--format', 'json'])) as { fingerprint: string; public: boolean }[]);

  const lxd = await startLxd(t, [server.tls.cert]);
  await certify(lxd.env.LXD_CONF!, 'lxc-builder', 'staging');
  await lxd.lxcOk(['remote', 'add', 'w', server.base, '--protocol=lxd']);
  await lxd.lxcOk(['image', 'import', ...(await build('1')), 'w:']);
  const incus = await startIncus(t, [server.tls.cert]);
  await certify(incus.env.INCUS_CONF!, 'incus-builder', 'staging');
  await incus.incusOk(['remote', 'add', 'w', server.base, '--protocol=incus']);
  await incus.incusOk(['image', 'import', ...(await build('2')), 'w:']);

  const images = await staged();
  assert.equal(images.length, 2, 'both pushes landed in staging');
  assert.ok(images.every((i) => !i.public), 'private');
  const index = (await fetchRaw(`${server.base}/streams/v1/images.json`, { ca: server.tls.cert })).body.toString();
  for (const i of images) assert.ok(!index.includes(i.fingerprint));

  // A reader's certificate (another channel) pushes nothing.
  const reader = await incus.newClient();
  await certify(reader.env.INCUS_CONF!, 'reader', 'stable');
  await reader.incusOk(['remote', 'add', 'w', server.base, '--protocol=incus']);
  const refused = await reader.incus(['image', 'import', ...(await build('3')), 'w:']);
  assert.notEqual(refused.code, 0, refused.stdout);
  assert.equal((await staged()).length, 2);
});

test('real incus pushes into staging; the test hooks pass; the gate publishes it; real lxc and incus then see it on the public index', { skip: !process.env.CI && missing }, async (t) => {
  if (missing) assert.fail(`interop tests must run in CI: ${missing}`);
  const work = await tempDir(t);
  const data = join(work, 'data');
  await wharfOk(data, ['channel', 'list']);
  await writeFile(join(data, 'config.yaml'), `gate_wait: 1\ntest_hooks:\n  - name: rootfs\n    command: 'unsquashfs -s "$WHARF_IMAGE_ROOTFS" >/dev/null'\n`);
  const server = await serve(t, data);
  const incus = await startIncus(t, [server.tls.cert]);
  const made = await selfsigned.generate([{ name: 'commonName', value: 'builder' }], { keyType: 'ec' });
  await writeFile(join(incus.env.INCUS_CONF!, 'client.crt'), made.cert);
  await writeFile(join(incus.env.INCUS_CONF!, 'client.key'), made.private, { mode: 0o600 });
  await wharfOk(data, ['trust', 'add', join(incus.env.INCUS_CONF!, 'client.crt'), '--channel', 'staging']);
  await incus.incusOk(['remote', 'add', 'w', server.base, '--protocol=incus']);
  const meta = await buildMetadataTarball(work, { name: 'm.tar.xz', properties: { os: 'Gated', release: '1', architecture: 'amd64', serial: '20261208_01:00' } });
  const rootfs = await buildSquashfs(work, { name: 'r.squashfs', seed: 'gated' });
  await incus.incusOk(['image', 'import', meta.path, rootfs.path, 'w:']);

  const index = async () => (await fetchRaw(`${server.base}/streams/v1/images.json`, { ca: server.tls.cert })).body.toString();
  await until('the gate published it', async () => ((await index()).includes(rootfs.sha256) ? true : undefined), 60_000);
  const [image] = JSON.parse(await wharfOk(data, ['image', 'staged', '--all', '--format', 'json'])) as { fingerprint: string; stage: string; channels: string[] }[];
  assert.deepEqual([image!.stage, image!.channels], ['promoted', ['default']]);
  assert.match(await wharfOk(data, ['image', 'tests', image!.fingerprint]), /rootfs\s*\|\s*1\s*\|\s*passed/);

  // Readers without any certificate: the public simplestreams index shows it, the daemons copy it.
  const reader = await incus.newClient();
  await reader.incusOk(['remote', 'add', 'pub', server.base, '--protocol=simplestreams', '--public']);
  assert.match(await reader.incusOk(['image', 'list', 'pub:', '--format', 'csv', '-c', 'F']), new RegExp(image!.fingerprint));
  await reader.incusOk(['image', 'copy', 'pub:gated/1', 'local:', '--alias', 'gated']);
  const lxd = await startLxd(t, [server.tls.cert]);
  await lxd.lxcOk(['remote', 'add', 'pub', server.base, '--protocol=simplestreams', '--public']);
  assert.match(await lxd.lxcOk(['image', 'info', 'pub:gated/1']), new RegExp(`Fingerprint: ${image!.fingerprint}`));
});
