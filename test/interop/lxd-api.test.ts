/**
 * Issue 3 with the real lxc 5.0.2 client and LXD daemon: wharf as an LXD-protocol remote.
 * Public access, private images hidden from untrusted clients, trust by join token, one-time
 * secrets for pulling private images, and direct-URL import.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildQcow2, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, freePort, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { lxdUnavailable, startLxd } from '../helpers/lxd.ts';
import { fetchRaw } from '../helpers/http.ts';
import selfsigned from 'selfsigned';
import { assertPublishedValid } from '../helpers/published.ts';


interface LxcImage {
  fingerprint: string;
  type: string;
  public: boolean;
  aliases: { name: string }[];
  properties: Record<string, string>;
}

const unavailable = lxdUnavailable();
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('real lxc uses wharf as an LXD-protocol remote', { skip: !process.env.CI && unavailable }, async (t) => {
  if (unavailable) assert.fail(`interop tests must run in CI: ${unavailable}`);
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, {});
  const sq = await buildSquashfs(work, { seed: 'sq' });
  const disk = await buildQcow2(work, { seed: 'vm' });
  const unified = await buildUnified(work, { properties: { os: 'Unitest', release: '2', architecture: 'amd64' }, seed: 'u', name: 'uni.tar.gz' });
  const secretImage = await buildUnified(work, { properties: { os: 'Secret', release: '1' }, seed: 'secret', name: 'secret.tar.gz' });

  const fpSq = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, sq.path, '--alias', 'sq']));
  const fpVm = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, disk.path, '--alias', 'vm']));
  const fpUni = fingerprintFrom(await wharfOk(data, ['image', 'import', unified.path, '--alias', 'uni']));
  const fpPriv = fingerprintFrom(await wharfOk(data, ['image', 'import', secretImage.path, '--private', '--alias', 'hidden']));

  const server = await serve(t, data);
  const lxd = await startLxd(t, [server.tls.cert]);
  await lxd.lxcOk(['remote', 'add', 'pub', server.base, '--public', '--accept-certificate']);

  // Untrusted: public images only, everywhere.
  const listed = await lxd.lxcJson<LxcImage[]>(['image', 'list', 'pub:']);
  assert.deepEqual(listed.map((i) => i.fingerprint).sort(), [fpSq, fpVm, fpUni].sort());
  assert.equal(listed.find((i) => i.fingerprint === fpVm)!.type, 'virtual-machine');
  assert.deepEqual(listed.find((i) => i.fingerprint === fpSq)!.aliases.map((a) => a.name), ['sq']);
  const filtered = await lxd.lxcJson<LxcImage[]>(['image', 'list', 'pub:', 'type=virtual-machine']);
  assert.deepEqual(filtered.map((i) => i.fingerprint), [fpVm]);
  assert.match(await lxd.lxcOk(['image', 'info', 'pub:sq']), new RegExp(`Fingerprint: ${fpSq}`));
  for (const ref of ['hidden', fpPriv, fpPriv.slice(0, 12)]) {
    const r = await lxd.lxc(['image', 'info', `pub:${ref}`]);
    assert.notEqual(r.code, 0, `untrusted info ${ref} must fail`);
    const e = await lxd.lxc(['image', 'export', `pub:${ref}`, work + '/']);
    assert.notEqual(e.code, 0, `untrusted export ${ref} must fail`);
  }

  // Exports: unified is one file, split is multipart with metadata + rootfs parts.
  for (const [alias, expected] of [
    ['sq', [meta.sha256, sq.sha256]],
    ['uni', [unified.sha256]],
  ] as const) {
    const out = join(work, `rest-export-${alias}`);
    await mkdir(out);
    await lxd.lxcOk(['image', 'export', `pub:${alias}`, out + '/']);
    const hashes = await Promise.all((await readdir(out)).map(async (f) => sha256(await readFile(join(out, f)))));
    assert.deepEqual(hashes.sort(), [...expected].sort(), `export of ${alias}`);
  }
  const vmOut = join(work, 'rest-export-vm');
  await mkdir(vmOut);
  await lxd.lxcOk(['image', 'export', 'pub:vm', vmOut + '/']);
  assert.equal((await readdir(vmOut)).length, 2);

  // The daemon pulls over the LXD protocol, resolving aliases to the right type.
  await lxd.lxcOk(['image', 'copy', 'pub:sq', 'local:', '--alias', 'r-sq']);
  await lxd.lxcOk(['image', 'copy', 'pub:vm', 'local:', '--vm', '--alias', 'r-vm']);
  await lxd.lxcOk(['image', 'copy', `pub:${fpUni.slice(0, 12)}`, 'local:', '--alias', 'r-uni']);
  let local = await lxd.lxcJson<LxcImage[]>(['image', 'list', 'local:']);
  const localFp = (alias: string) => local.find((i) => i.aliases.some((a) => a.name === alias))?.fingerprint;
  assert.equal(localFp('r-sq'), fpSq);
  assert.equal(localFp('r-vm'), fpVm);
  assert.equal(localFp('r-uni'), fpUni);

  // Trust by one-time token: the trusted remote sees the private image.
  const token = (await wharfOk(data, ['trust', 'add-token', 'tester', '--address', `127.0.0.1:${server.httpsPort}`])).trim();
  await lxd.lxcOk(['remote', 'add', 'priv', token]);
  const trustedList = await lxd.lxcJson<LxcImage[]>(['image', 'list', 'priv:']);
  assert.ok(trustedList.some((i) => i.fingerprint === fpPriv && !i.public), 'trusted clients see private images');
  assert.match(await wharfOk(data, ['trust', 'list']), /tester/);
  // Another client presenting the used token is refused.
  const other = await selfsigned.generate([{ name: 'commonName', value: 'intruder' }], { keyType: 'ec' });
  const reused = await fetchRaw(`${server.base}/1.0/certificates`, {
    ca: server.tls.cert,
    method: 'POST',
    cert: other.cert,
    key: other.private,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ password: token, type: 'client' }),
  });
  assert.equal(reused.status, 403, 'a token works once');
  assert.equal(JSON.parse(reused.body.toString()).error_code, 403);

  // Copying a private image: the CLI mints a secret on wharf and the (untrusted) daemon pulls with it.
  await lxd.lxcOk(['image', 'copy', 'priv:hidden', 'local:', '--alias', 'r-priv']);
  local = await lxd.lxcJson<LxcImage[]>(['image', 'list', 'local:']);
  assert.equal(localFp('r-priv'), fpPriv);

  // A trusted client manages the store remotely: uploads (unified and split), aliases, edit, delete.
  const upUni = await buildUnified(work, { properties: { os: 'Pushed', release: '1' }, seed: 'pushed', name: 'pushed.tar.xz', compression: 'xz' });
  await lxd.lxcOk(['image', 'import', upUni.path, 'priv:', '--alias', 'up-uni']);
  const upMeta = await buildMetadataTarball(work, { properties: { os: 'Pushed', release: '2' }, name: 'up-meta.tar.xz' });
  const upSq = await buildSquashfs(work, { seed: 'pushed-sq', name: 'up.squashfs' });
  await lxd.lxcOk(['image', 'import', upMeta.path, upSq.path, 'priv:', '--alias', 'up-split']);
  const inStore = JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])) as (LxcImage & { aliases: { name: string }[] })[];
  const upUniStored = inStore.find((i) => i.fingerprint === upUni.sha256);
  assert.ok(upUniStored, 'the unified upload is in the store');
  assert.deepEqual(upUniStored.aliases.map((a) => a.name), ['up-uni']);
  const upSplitStored = inStore.find((i) => i.aliases.some((a) => a.name === 'up-split'));
  assert.equal(upSplitStored?.fingerprint, sha256(Buffer.concat([await readFile(upMeta.path), await readFile(upSq.path)])));

  await lxd.lxcOk(['image', 'alias', 'create', 'priv:renamed', upUni.sha256]);
  assert.ok((await lxd.lxcOk(['image', 'alias', 'list', 'priv:'])).includes('renamed'));
  await lxd.lxcOk(['image', 'alias', 'delete', 'priv:renamed']);
  assert.ok(!(await wharfOk(data, ['image', 'alias', 'list'])).includes('renamed'));

  const shown = await lxd.lxcOk(['image', 'show', 'priv:up-uni']);
  await lxd.lxcOk(['image', 'edit', 'priv:up-uni'], shown.replace(/description: .*|os: Pushed/, 'os: Edited'));
  assert.match(await wharfOk(data, ['image', 'show', 'up-uni']), /os: Edited/);
  await lxd.lxcOk(['image', 'delete', 'priv:up-split']);
  assert.ok(!(await wharfOk(data, ['image', 'list', '--format', 'csv'])).includes('up-split'));

  // Relay copy: the client downloads from the daemon and uploads to wharf.
  const fresh = await buildUnified(work, { properties: { os: 'Fresh', release: '1' }, seed: 'fresh', name: 'fresh.tar.gz' });
  await lxd.lxcOk(['image', 'import', fresh.path, 'local:', '--alias', 'fresh']);
  await lxd.lxcOk(['image', 'copy', 'local:fresh', 'priv:', '--mode', 'relay', '--alias', 'relayed']);
  assert.match(await wharfOk(data, ['image', 'info', 'relayed']), new RegExp(`Fingerprint: ${fresh.sha256}`));

  // Default (pull) copy: wharf fetches from the daemon with the secret the client obtained there.
  const daemonPort = await freePort();
  await lxd.lxcOk(['config', 'set', 'core.https_address', `127.0.0.1:${daemonPort}`]);
  const pulled = await buildUnified(work, { properties: { os: 'Pulled', release: '1' }, seed: 'pulled', name: 'pulled.tar.gz' });
  await lxd.lxcOk(['image', 'import', pulled.path, 'local:', '--alias', 'to-pull']);
  await lxd.lxcOk(['image', 'copy', 'local:to-pull', 'priv:', '--alias', 'pulled']);
  assert.match(await wharfOk(data, ['image', 'info', 'pulled']), new RegExp(`Fingerprint: ${pulled.sha256}`));
  // Push copy: the daemon uploads to wharf, untrusted, with a secret wharf issued.
  const pushedMeta = await buildMetadataTarball(work, { properties: { os: 'Pushed', release: '3' }, name: 'pushed-meta.tar.xz' });
  const pushedSq = await buildSquashfs(work, { seed: 'pushed-3', name: 'pushed.squashfs' });
  await lxd.lxcOk(['image', 'import', pushedMeta.path, pushedSq.path, 'local:', '--alias', 'to-push']);
  await lxd.lxcOk(['image', 'copy', 'local:to-push', 'priv:', '--mode', 'push', '--alias', 'pushed']);
  assert.match(await wharfOk(data, ['image', 'info', 'pushed']), /Properties:[\s\S]*os: Pushed/);

  // The same image in the real daemon and in wharf: the untrusted API answers agree field by field.
  const cmpMeta = await buildMetadataTarball(work, { properties: { os: 'Compare', release: '1', description: 'compare me' }, name: 'cmp-meta.tar.xz', expiryDate: 1893456000 });
  const cmpSq = await buildSquashfs(work, { seed: 'cmp', name: 'cmp.squashfs' });
  const fpCmp = fingerprintFrom(await wharfOk(data, ['image', 'import', cmpMeta.path, cmpSq.path, '--alias', 'cmp']));
  await lxd.lxcOk(['image', 'import', cmpMeta.path, cmpSq.path, 'local:', '--public', '--alias', 'cmp']);
  const daemon = `https://127.0.0.1:${daemonPort}`;
  const anonymous = async (base: string, path: string) => {
    const r = await fetchRaw(base + path, { ca: base === server.base ? server.tls.cert : undefined, ...(base === daemon ? { insecure: true } : {}) });
    return { status: r.status, body: JSON.parse(r.body.toString()) };
  };
  const timestamps = ['uploaded_at', 'last_used_at'];
  const strip = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([k]) => !timestamps.includes(k)));
  const [ours, theirs] = await Promise.all([anonymous(server.base, `/1.0/images/${fpCmp}`), anonymous(daemon, `/1.0/images/${fpCmp}`)]);
  assert.equal(ours.status, theirs.status);
  assert.deepEqual(Object.keys(ours.body).sort(), Object.keys(theirs.body).sort(), 'envelope');
  // `project` came after LXD 5.0 (images_all_projects); current LXD and Incus send it.
  assert.equal(ours.body.metadata.project, 'default');
  delete ours.body.metadata.project;
  assert.deepEqual(strip(ours.body.metadata), strip(theirs.body.metadata), 'image object');
  for (const path of ['/1.0/images/aliases/cmp', '/1.0/images/aliases/nothing', '/1.0/images/0000', '/1.0/images/aliases']) {
    const [a, b] = await Promise.all([anonymous(server.base, path), anonymous(daemon, path)]);
    assert.equal(a.status, b.status, path);
    assert.deepEqual(a.body, b.body, path);
  }
  const [info, realInfo] = await Promise.all([anonymous(server.base, '/1.0'), anonymous(daemon, '/1.0')]);
  for (const key of ['auth', 'public', 'api_status', 'api_version', 'auth_methods']) assert.deepEqual(info.body.metadata[key], realInfo.body.metadata[key], key);
  for (const ext of info.body.metadata.api_extensions) assert.ok(realInfo.body.metadata.api_extensions.includes(ext), `${ext} is a real extension`);

  // Direct-URL import: the daemon HEADs /direct/ALIAS, then fetches and checks the file.
  await lxd.lxcOk(['image', 'import', `${server.base}/direct/unitest/2`, '--alias', 'r-direct']);
  local = await lxd.lxcJson<LxcImage[]>(['image', 'list', 'local:']);
  assert.equal(localFp('r-direct'), fpUni);
  const noMatch = await lxd.lxc(['image', 'import', `${server.base}/direct/testlinux/1.0`, '--alias', 'nope']);
  assert.notEqual(noMatch.code, 0, 'split images cannot be imported by URL');
  await assertPublishedValid(server);
});
