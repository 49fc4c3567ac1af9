/**
 * The real Incus 6.0.4 client and daemon use wharf over the Incus REST protocol: anonymously
 * (public images, product aliases), and trusted through a join token while wharf serves an
 * operator's certificate (not the data directory's): uploads, aliases, pull-mode copies into wharf
 * from another server of either protocol, by alias. And everything a user manages over REST:
 * private images from a never-trusted client, secrets, edits (ETag / If-Match, checked against
 * incusd's own), relay / push / pull copies, direct-URL import, VMs, auto-update by refresh.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { request as httpRequest } from 'node:http';
import { buildMetadataTarball, buildQcow2, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, freePort, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { imageEtag } from '../../src/domain/lxd-api.ts';
import type { Image } from '../../src/domain/image.ts';
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

/** GET on the real daemon's own socket: what incusd answers, headers included. */
function daemonGet(dir: string, path: string): Promise<{ headers: Record<string, string | string[] | undefined>; body: { metadata: Record<string, unknown> } }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath: join(dir, 'unix.socket'), path, headers: { host: 'incus' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('real incus manages wharf over REST: private images and secrets, edits with ETags, push / relay / pull copies, direct URL, refresh, VMs', { skip: !process.env.CI && unavailable }, async (t) => {
  if (unavailable) assert.fail(`interop tests must run in CI: ${unavailable}`);
  const work = await tempDir(t);
  const data = join(work, 'data');
  const props = { os: 'Testlinux', release: '1.0', architecture: 'amd64', serial: '20250101_00:00' };
  const meta = await buildMetadataTarball(work, { properties: props });
  const squashfs = await buildSquashfs(work, { seed: 'sq' });
  const fpOld = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, squashfs.path]));
  const fpVm = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, (await buildQcow2(work, { seed: 'vm' })).path, '--alias', 'vm']));
  const hidden = await buildUnified(work, { name: 'hidden.tar.gz', seed: 'hidden', properties: { os: 'Hidden', release: '1', architecture: 'amd64' } });
  const fpHidden = fingerprintFrom(await wharfOk(data, ['image', 'import', hidden.path, '--private', '--alias', 'hidden']));
  const unified = await buildUnified(work, { name: 'uni.tar.gz', seed: 'uni', properties: { os: 'Unitest', release: '2', architecture: 'amd64' } });
  const fpUni = fingerprintFrom(await wharfOk(data, ['image', 'import', unified.path]));

  const server = await serve(t, data);
  const incus = await startIncus(t, [server.tls.cert]);

  // A client that was never trusted sees no private image, by alias, fingerprint or prefix.
  const stranger = await incus.newClient();
  await stranger.incusOk(['remote', 'add', 'wapi', server.base, '--protocol=incus', '--public', '--accept-certificate']);
  assert.ok(!(await stranger.incusJson<IncusImage[]>(['image', 'list', 'wapi:'])).some((i) => i.fingerprint === fpHidden));
  for (const ref of ['hidden', fpHidden, fpHidden.slice(0, 12)]) {
    const r = await stranger.incus(['image', 'info', `wapi:${ref}`]);
    assert.notEqual(r.code, 0, ref);
    assert.match(r.stderr, /not found/i, ref);
  }

  // Trusted through a token; a private image copied into the daemon with a one-time secret.
  const token = (await wharfOk(data, ['trust', 'add-token', 'incus-admin', '--address', `127.0.0.1:${server.httpsPort}`])).trim();
  await incus.incusOk(['remote', 'add', 'wadmin', token]);
  assert.ok((await incus.incusJson<IncusImage[]>(['image', 'list', 'wadmin:'])).some((i) => i.fingerprint === fpHidden));
  await incus.incusOk(['image', 'copy', 'wadmin:hidden', 'local:', '--alias', 'got-hidden']);
  assert.ok((await incus.incusJson<IncusImage[]>(['image', 'list', 'local:'])).some((i) => i.fingerprint === fpHidden));

  // wharf's ETag is incusd's own, computed the same way from the same fields.
  const real = await daemonGet(incus.dir, `/1.0/images/${fpHidden}`);
  const realImage = real.body.metadata as { public: boolean; auto_update: boolean; properties: Record<string, string> };
  assert.equal(imageEtag({ public: realImage.public, autoUpdate: realImage.auto_update, properties: realImage.properties } as Image), real.headers.etag);

  // Edits: the client reads the image (and its ETag), then sends the change with If-Match.
  const shown = await incus.incusOk(['image', 'show', `wadmin:${fpOld}`]);
  await incus.incusOk(['image', 'edit', `wadmin:${fpOld}`], shown.replace(/^ {2}os: Testlinux$/m, '  os: Testlinux\n  edited: "yes"'));
  assert.match(await wharfOk(data, ['image', 'show', fpOld]), /edited: "?yes"?/);
  await incus.incusOk(['image', 'set-property', `wadmin:${fpOld}`, 'colour', 'red']);
  assert.equal((await incus.incusOk(['image', 'get-property', `wadmin:${fpOld}`, 'colour'])).trim(), 'red');

  // Relay copy (the client downloads, then uploads with X-Incus-aliases), push copy (the daemon
  // uploads with a secret wharf issued), pull copy (wharf fetches from the daemon).
  const fresh = await buildUnified(work, { name: 'fresh.tar.gz', seed: 'fresh', properties: { os: 'Fresh', release: '1', architecture: 'amd64' } });
  await incus.incusOk(['image', 'import', fresh.path, 'local:', '--alias', 'fresh']);
  await incus.incusOk(['image', 'copy', 'local:fresh', 'wadmin:', '--mode', 'relay', '--alias', 'relayed']);
  assert.match(await wharfOk(data, ['image', 'info', 'relayed']), new RegExp(`Fingerprint: ${fresh.sha256}`));
  const pushMeta = await buildMetadataTarball(work, { name: 'push-meta.tar.xz', properties: { os: 'Pushed', release: '3', architecture: 'amd64' } });
  await incus.incusOk(['image', 'import', pushMeta.path, (await buildSquashfs(work, { seed: 'push', name: 'push.squashfs' })).path, 'local:', '--alias', 'to-push']);
  await incus.incusOk(['image', 'copy', 'local:to-push', 'wadmin:', '--mode', 'push', '--alias', 'pushed']);
  assert.match(await wharfOk(data, ['image', 'info', 'pushed']), /os: Pushed/);
  await incus.incusOk(['config', 'set', 'core.https_address', `127.0.0.1:${await freePort()}`]);
  const pulled = await buildUnified(work, { name: 'pulled.tar.gz', seed: 'pulled', properties: { os: 'Pulled', release: '1', architecture: 'amd64' } });
  await incus.incusOk(['image', 'import', pulled.path, 'local:', '--alias', 'to-pull']);
  await incus.incusOk(['image', 'copy', 'local:to-pull', 'wadmin:', '--alias', 'pulled']);
  assert.match(await wharfOk(data, ['image', 'info', 'pulled']), new RegExp(`Fingerprint: ${pulled.sha256}`));

  // Direct-URL import: the daemon HEADs /direct/ALIAS (Incus-Image-* headers), then fetches the file.
  await incus.incusOk(['image', 'import', `${server.base}/direct/unitest/2`, 'local:', '--alias', 'by-url']);
  assert.equal((await incus.incusJson<IncusImage[]>(['image', 'list', 'local:'])).find((i) => i.aliases.some((a) => a.name === 'by-url'))?.fingerprint, fpUni);

  // Aliases from the client: create, list.
  await incus.incusOk(['image', 'alias', 'create', 'wadmin:made-by-incus', fpOld]);
  assert.match(await incus.incusOk(['image', 'alias', 'list', 'wadmin:', '--format', 'csv']), new RegExp(`made-by-incus,${fpOld.slice(0, 12)}`));
  assert.match(await wharfOk(data, ['image', 'info', 'made-by-incus']), new RegExp(`Fingerprint: ${fpOld}`));

  // A VM over REST, by its alias.
  await stranger.incusOk(['image', 'copy', 'wapi:vm', 'local:', '--vm', '--alias', 'got-vm']);
  const gotVm = (await incus.incusJson<IncusImage[]>(['image', 'list', 'local:'])).find((i) => i.aliases.some((a) => a.name === 'got-vm'));
  assert.equal(gotVm?.fingerprint, fpVm);
  // What the catalogue offers for a product with a container and a VM over this protocol: the VM
  // by its fingerprint (the product alias names the container here, as with incusd).
  assert.match(await stranger.incusOk(['image', 'info', `wapi:${fpVm}`, '--vm']), new RegExp(`Fingerprint: ${fpVm}`));
  assert.notEqual((await stranger.incus(['image', 'info', 'wapi:testlinux/1.0', '--vm'])).code, 0, 'the product alias with --vm fails over the LXD API');
  assert.equal(gotVm?.type, 'virtual-machine');

  // Auto-update: a copy that follows a product alias picks up the next build on refresh.
  await stranger.incusOk(['image', 'copy', 'wapi:testlinux/1.0', 'local:', '--auto-update', '--alias', 'follows']);
  const follows = async () => (await incus.incusJson<IncusImage[]>(['image', 'list', 'local:'])).find((i) => i.aliases.some((a) => a.name === 'follows'))?.fingerprint;
  assert.equal(await follows(), fpOld);
  const newer = await buildMetadataTarball(work, { name: 'newer.tar.xz', properties: { ...props, serial: '20250201_00:00' } });
  const fpNew = fingerprintFrom(await wharfOk(data, ['image', 'import', newer.path, (await buildSquashfs(work, { seed: 'sq-2', name: 'sq2.squashfs' })).path]));
  await incus.incusOk(['image', 'refresh', 'follows']);
  assert.equal(await follows(), fpNew, 'the refresh fetched the newer build');

  await assertPublishedValid(server);
});
