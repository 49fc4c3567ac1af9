/**
 * The real Incus 6.0.4 client and daemon use wharf over the Incus REST protocol: anonymously
 * (public images, product aliases), and trusted through a join token while wharf serves an
 * operator's certificate (not the data directory's): uploads, aliases, pull-mode copies into wharf
 * from another server of either protocol, by alias.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { buildMetadataTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { incusUnavailable, startIncus } from '../helpers/incus.ts';
import { assertPublishedValid } from '../helpers/published.ts';

interface IncusImage {
  fingerprint: string;
  type: string;
  aliases: { name: string }[];
}

const unavailable = incusUnavailable();

/** An operator's certificate for 127.0.0.1, with a subject of its own (see real-clients.md). */
async function operatorCertificate(dir: string, name: string) {
  const pems = await selfsigned.generate([{ name: 'commonName', value: `wharf operator ${name}` }], {
    keyType: 'ec',
    curve: 'P-256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] }],
  } as Parameters<typeof selfsigned.generate>[1]);
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await writeFile(cert, pems.cert);
  await writeFile(key, pems.private, { mode: 0o600 });
  return { cert, key, pem: pems.cert };
}

test('real incus over the REST protocol: product aliases, token join on an operator certificate, uploads, pulls by alias', { skip: !process.env.CI && unavailable }, async (t) => {
  if (unavailable) assert.fail(`interop tests must run in CI: ${unavailable}`);
  const work = await tempDir(t);
  const data = join(work, 'data');
  const source = join(work, 'source');

  const props = { os: 'Testlinux', release: '1.0', variant: 'default', architecture: 'amd64', description: 'Testlinux 1.0' };
  const meta = await buildMetadataTarball(work, { properties: props });
  const squashfs = await buildSquashfs(work, { seed: 'sq' });
  const fpSquashfs = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, squashfs.path]));
  // Built as distrobuilder builds it: the codename is the release.
  const bookwormMeta = await buildMetadataTarball(work, { name: 'bookworm.tar.xz', properties: { os: 'Debian', release: 'bookworm', variant: 'default', architecture: 'amd64' } });
  const fpBookworm = fingerprintFrom(await wharfOk(data, ['image', 'import', bookwormMeta.path, squashfs.path]));
  // Another server, the source of pull-mode copies into wharf.
  const upstreamImage = await buildUnified(work, { name: 'upstream.tar.gz', seed: 'upstream', properties: { os: 'Upstream', release: '5', architecture: 'amd64' } });
  const upstreamVm = await buildUnified(work, { name: 'upstream-2.tar.gz', seed: 'upstream-2', properties: { os: 'Upstream', release: '6', architecture: 'amd64' } });
  const fpUpstream = fingerprintFrom(await wharfOk(source, ['image', 'import', upstreamImage.path, '--alias', 'up-alias']));
  const fpUpstream2 = fingerprintFrom(await wharfOk(source, ['image', 'import', upstreamVm.path, '--alias', 'up-alias-2']));

  const operator = await operatorCertificate(work, 'main');
  const server = await serve(t, data, { tlsCert: operator.cert, tlsKey: operator.key });
  const upstream = await serve(t, source);
  const incus = await startIncus(t, [operator.pem, upstream.tls.cert]);

  // Anonymous: public images, and the product aliases simplestreams clients know.
  await incus.incusOk(['remote', 'add', 'wapi', server.base, '--protocol=incus', '--public', '--accept-certificate']);
  const listed = await incus.incusJson<IncusImage[]>(['image', 'list', 'wapi:']);
  assert.deepEqual(listed.map((i) => i.fingerprint).sort(), [fpSquashfs, fpBookworm].sort());
  assert.match(await incus.incusOk(['image', 'info', 'wapi:testlinux/1.0']), new RegExp(`Fingerprint: ${fpSquashfs}`));
  // A release answers to its codename and its number, as on images.linuxcontainers.org.
  for (const name of ['debian/bookworm', 'debian/12', 'debian/12/default/amd64']) {
    assert.match(await incus.incusOk(['image', 'info', `wapi:${name}`]), new RegExp(`Fingerprint: ${fpBookworm}`), name);
  }
  await incus.incusOk(['image', 'copy', 'wapi:testlinux/1.0', 'local:', '--alias', 'by-product-alias']);
  const local = await incus.incusJson<IncusImage[]>(['image', 'list', 'local:']);
  assert.equal(local.find((i) => i.aliases.some((a) => a.name === 'by-product-alias'))?.fingerprint, fpSquashfs);

  // Trusted through a token, which must pin the certificate actually served.
  const port = new URL(server.base).port;
  const token = (await wharfOk(data, ['trust', 'add-token', 'incus-admin', '--address', `127.0.0.1:${port}`])).trim();
  const admin = await incus.newClient();
  await admin.incusOk(['remote', 'add', 'wadmin', token]);
  assert.match(await admin.incusOk(['remote', 'list']), /wadmin/);

  // Upload, alias, delete.
  const uploaded = await buildUnified(work, { name: 'uploaded.tar.gz', seed: 'uploaded', properties: { os: 'Uploaded', release: '1', architecture: 'amd64' } });
  await admin.incusOk(['image', 'import', uploaded.path, 'wadmin:', '--alias', 'up']);
  assert.match(await wharfOk(data, ['image', 'info', 'up']), new RegExp(uploaded.sha256));
  await admin.incusOk(['image', 'alias', 'rename', 'wadmin:up', 'up2']);
  await admin.incusOk(['image', 'alias', 'delete', 'wadmin:up2']);
  await admin.incusOk(['image', 'delete', `wadmin:${uploaded.sha256.slice(0, 12)}`]);
  assert.doesNotMatch(await wharfOk(data, ['image', 'list']), new RegExp(uploaded.sha256.slice(0, 12)));

  // Pull-mode copies into wharf, by alias: the client puts the alias where the fingerprint goes.
  await admin.incusOk(['remote', 'add', 'src-api', upstream.base, '--protocol=incus', '--public', '--accept-certificate']);
  await admin.incusOk(['image', 'copy', 'src-api:up-alias', 'wadmin:', '--alias', 'pulled-api']);
  assert.match(await wharfOk(data, ['image', 'info', 'pulled-api']), new RegExp(fpUpstream));
  await admin.incusOk(['remote', 'add', 'src-ss', upstream.base, '--protocol=simplestreams']);
  await admin.incusOk(['image', 'copy', 'src-ss:up-alias-2', 'wadmin:', '--alias', 'pulled-ss']);
  assert.match(await wharfOk(data, ['image', 'info', 'pulled-ss']), new RegExp(fpUpstream2));
  await assertPublishedValid(server);
  await assertPublishedValid(upstream);
});
