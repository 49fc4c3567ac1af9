/** Copying images from other servers: a second wharf over both protocols, and a static tree. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile, copyFile, truncate } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { parse } from 'yaml';
import { buildMetadataTarball, buildQcow2, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { errorCatalogue } from '../../src/errors.ts';

test('image copy from another server, over simplestreams and the LXD API, verified', async (t) => {
  const work = await tempDir(t);
  const upstream = join(work, 'upstream');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Debian', release: '12', variant: 'default', architecture: 'amd64' } });
  const sq = await buildSquashfs(work, { seed: 'sq' });
  const disk = await buildQcow2(work, { seed: 'vm' });
  const unified = await buildUnified(work, { properties: { os: 'Alpine', release: '3.20', architecture: 'amd64' }, seed: 'alp' });
  const fpSq = fingerprintFrom(await wharfOk(upstream, ['image', 'import', meta.path, sq.path]));
  const fpVm = fingerprintFrom(await wharfOk(upstream, ['image', 'import', meta.path, disk.path, '--alias', 'the-vm']));
  const fpUni = fingerprintFrom(await wharfOk(upstream, ['image', 'import', unified.path, '--alias', 'alp']));
  const server = await serve(t, upstream);
  const cert = join(work, 'upstream.crt');
  await writeFile(cert, server.tls.cert);

  const local = join(work, 'local');
  await wharfOk(local, ['remote', 'add', 'up', server.base, '--certificate', cert]);
  await wharfOk(local, ['remote', 'add', 'upl', server.base, '--protocol', 'lxd', '--certificate', cert]);
  const remotes = JSON.parse(await wharfOk(local, ['remote', 'list', '--format', 'json'])) as { name: string; protocol: string; static: boolean }[];
  assert.deepEqual(remotes.map((r) => r.name), ['images', 'ubuntu', 'ubuntu-daily', 'up', 'upl']);
  assert.match((await wharf(local, ['remote', 'remove', 'images'])).stderr, /built in and cannot be removed/);

  assert.match(await wharfOk(local, ['image', 'copy', 'up:debian/12', '--alias', 'mine', '--auto-update']), new RegExp(fpSq));
  assert.match(await wharfOk(local, ['image', 'copy', 'up:debian/12', '--vm', '--copy-aliases']), new RegExp(fpVm));
  assert.match(await wharfOk(local, ['image', 'copy', `upl:alp`]), new RegExp(fpUni));
  const shown = parse(await wharfOk(local, ['image', 'show', 'mine']));
  assert.equal(shown.fingerprint, fpSq);
  assert.equal(shown.auto_update, true);
  assert.equal(shown.update_source.alias, 'debian/12');
  assert.equal(shown.update_source.protocol, 'simplestreams');
  assert.equal(shown.properties.os, 'Debian');
  const vmShown = parse(await wharfOk(local, ['image', 'show', fpVm]));
  assert.equal(vmShown.type, 'virtual-machine');
  assert.ok(vmShown.aliases.some((a: { name: string }) => a.name === 'debian/12'), 'copied aliases');
  assert.match((await wharf(local, ['image', 'copy', 'up:debian/12'])).stderr, /already exists/);
  assert.match((await wharf(local, ['image', 'copy', 'up:nothing/here'])).stderr, /couldn't be found/);
  assert.match(await wharfOk(local, ['image', 'verify']), new RegExp(`${fpUni}: ok`));

  // Auto-update: a newer build upstream replaces the copy and takes its aliases.
  const newer = await buildMetadataTarball(work, { name: 'newer.tar.xz', properties: { os: 'Debian', release: '12', variant: 'default', architecture: 'amd64', serial: '20991231_00:00' } });
  const newerSq = await buildSquashfs(work, { seed: 'newer', name: 'newer.squashfs' });
  const fpNew = fingerprintFrom(await wharfOk(upstream, ['image', 'import', newer.path, newerSq.path]));
  await new Promise((r) => setTimeout(r, 400));
  assert.match(await wharfOk(local, ['image', 'refresh']), new RegExp(`${fpSq}: updated to ${fpNew}`));
  assert.equal(parse(await wharfOk(local, ['image', 'show', 'mine'])).fingerprint, fpNew);
  assert.match((await wharf(local, ['image', 'info', fpSq])).stderr, /not found/);
  assert.match(await wharfOk(local, ['image', 'refresh', 'mine']), /up to date/);

  // A static tree of the same server, as a directory remote, with one file tampered and one cut short.
  const tree = join(work, 'tree');
  for (const path of ['streams/v1/index.json', 'streams/v1/images.json']) {
    await mkdir(dirname(join(tree, path)), { recursive: true });
    await writeFile(join(tree, path), (await fetchRaw(`${server.base}/${path}`, { ca: server.tls.cert })).body);
  }
  const products = JSON.parse(await readFile(join(tree, 'streams/v1/images.json'), 'utf8'));
  const files = Object.values(products.products).flatMap((p) => Object.values((p as { versions: Record<string, { items: Record<string, { path: string; sha256: string }> }> }).versions).flatMap((v) => Object.values(v.items)));
  await mkdir(join(tree, 'files'));
  for (const f of files) await copyFile(join(upstream, 'blobs', 'sha256', f.sha256.slice(0, 2), f.sha256), join(tree, f.path));
  const fresh = join(work, 'fresh');
  await wharfOk(fresh, ['remote', 'add', 'tree', tree]);
  assert.match(await wharfOk(fresh, ['image', 'copy', 'tree:alp']), new RegExp(fpUni));

  const sqFile = files.find((f) => f.sha256 === newerSq.sha256)!;
  const bytes = await readFile(join(tree, sqFile.path));
  bytes[1000] = bytes[1000]! ^ 0xff;
  await writeFile(join(tree, sqFile.path), bytes);
  const tampered = await wharf(fresh, ['image', 'copy', 'tree:debian/12']);
  assert.equal(tampered.code, errorCatalogue.upstream_corrupt.exit, 'the upstream is at fault: upstream_corrupt');
  assert.match(tampered.stderr, /Hash mismatch/);
  await copyFile(newerSq.path, join(tree, sqFile.path));
  await truncate(join(tree, sqFile.path), 1000);
  const truncated = await wharf(fresh, ['image', 'copy', 'tree:debian/12']);
  assert.equal(truncated.code, errorCatalogue.upstream_corrupt.exit);
  assert.match(truncated.stderr, /truncated/);
  const after = JSON.parse(await wharfOk(fresh, ['image', 'list', '--format', 'json'])) as { fingerprint: string }[];
  assert.deepEqual(after.map((i) => i.fingerprint), [fpUni], 'failed copies leave nothing behind');
});
