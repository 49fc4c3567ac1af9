/** Mirror sync against a real upstream server: filters, retention, verified and whole versions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { buildMetadataTarball, buildQcow2, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';

async function addVersion(work: string, upstream: string, os: string, arch: string, serial: string, withVm: boolean) {
  const props = { os, release: '12', variant: 'default', architecture: arch, serial };
  const meta = await buildMetadataTarball(work, { properties: props, architecture: arch, name: `meta-${os}-${arch}-${serial}.tar.xz`.replace(/:/g, '') });
  const sq = await buildSquashfs(work, { seed: `${os}${arch}${serial}`, name: `sq-${os}-${arch}-${serial}.squashfs`.replace(/:/g, '') });
  const fps = [fingerprintFrom(await wharfOk(upstream, ['image', 'import', meta.path, sq.path]))];
  if (withVm) {
    const disk = await buildQcow2(work, { seed: `vm${os}${arch}${serial}`, name: `vm-${os}-${arch}-${serial}.qcow2`.replace(/:/g, '') });
    fps.push(fingerprintFrom(await wharfOk(upstream, ['image', 'import', meta.path, disk.path])));
  }
  return fps;
}

type Listed = { fingerprint: string; type: string; public: boolean; properties: Record<string, string> };

test('mirror sync keeps the newest versions of the filtered products, whole and verified', async (t) => {
  const work = await tempDir(t);
  const upstream = join(work, 'upstream');
  const v1 = await addVersion(work, upstream, 'Debian', 'amd64', '20250101_00:00', true);
  const v2 = await addVersion(work, upstream, 'Debian', 'amd64', '20250201_00:00', true);
  const v3 = await addVersion(work, upstream, 'Debian', 'amd64', '20250301_00:00', true);
  const arm = await addVersion(work, upstream, 'Debian', 'arm64', '20250301_00:00', false);
  const other = await addVersion(work, upstream, 'Alpine', 'amd64', '20250301_00:00', false);
  const up = await serve(t, upstream);
  const cert = join(work, 'up.crt');
  await writeFile(cert, up.tls.cert);

  const local = join(work, 'local');
  await wharfOk(local, ['remote', 'add', 'up', up.base, '--certificate', cert]);
  await wharfOk(local, ['mirror', 'add', 'deb', 'up', '--filter', 'os=debian', '--filter', 'architecture=x86_64', '--keep', '2', '--types', 'container']);
  assert.match((await wharf(local, ['mirror', 'add', 'bad', 'up', '--filter', 'colour=red'])).stderr, /Invalid filter "colour=red"/);

  const dry = await wharfOk(local, ['mirror', 'sync', '--dry-run']);
  assert.match(dry, /deb: would add 2 images/);
  assert.ok(dry.includes(v3[0]!.slice(0, 12)) && dry.includes(v2[0]!.slice(0, 12)) && !dry.includes(v1[0]!.slice(0, 12)));
  assert.equal(JSON.parse(await wharfOk(local, ['image', 'list', '--format', 'json'])).length, 0, 'a dry run changes nothing');

  await wharfOk(local, ['mirror', 'sync', 'deb']);
  const list = async () => JSON.parse(await wharfOk(local, ['image', 'list', '--format', 'json'])) as Listed[];
  let images = await list();
  assert.deepEqual(images.map((i) => i.fingerprint).sort(), [v2[0], v3[0]].sort());
  assert.ok(images.every((i) => i.public && i.type === 'container'));
  assert.ok(!images.some((i) => arm.includes(i.fingerprint) || other.includes(i.fingerprint)));

  // Served with the upstream's aliases beside local images.
  const server = await serve(t, local);
  const products = JSON.parse((await fetchRaw(`${server.base}/streams/v1/images.json`, { ca: server.tls.cert })).body.toString());
  const product = products.products['debian:12:amd64:default'];
  // The upstream's own aliases, and the release's other name (release_aliases) after them.
  assert.equal(product.aliases, 'debian/12/default,debian/12,debian/bookworm/default,debian/bookworm');
  assert.deepEqual(Object.keys(product.versions).sort(), ['20250201_00:00', '20250301_00:00']);

  // A no-change re-sync adds nothing; a new upstream version rotates the oldest out.
  assert.match(await wharfOk(local, ['mirror', 'sync']), /deb: added 0 images .* removed 0/);
  const v4 = await addVersion(work, upstream, 'Debian', 'amd64', '20250401_00:00', false);
  await new Promise((r) => setTimeout(r, 400)); // the upstream re-renders its index
  await wharfOk(local, ['mirror', 'sync']);
  images = await list();
  assert.deepEqual(images.map((i) => i.fingerprint).sort(), [v3[0], v4[0]].sort());
  const mirrors = JSON.parse(await wharfOk(local, ['mirror', 'list', '--format', 'json']));
  assert.equal(mirrors[0].lastError, null);
  assert.ok(mirrors[0].lastSync);
});
