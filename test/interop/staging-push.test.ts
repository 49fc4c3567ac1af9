/**
 * Builders pushing with the real clients: `lxc image import META ROOTFS REMOTE:` and
 * `incus image import ... REMOTE:` with a client certificate trusted for the staging channel only.
 * The image lands in staging, private; the public index shows nothing of it; a certificate trusted
 * for another channel cannot push.
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
