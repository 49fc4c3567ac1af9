/**
 * Mirror mode judged by the real clients: `lxc` 5.0.2 and `incus` 6.0.4 add a wharf mirror as a
 * simplestreams remote; their index requests are redirected to the origin wharf, their file
 * downloads are answered by the mirror (filled from the origin once), and the daemons check the
 * fingerprints of what they got.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildMetadataTarball, buildQcow2, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { lxdUnavailable, startLxd } from '../helpers/lxd.ts';
import { incusUnavailable, startIncus } from '../helpers/incus.ts';
import { assertPublishedValid } from '../helpers/published.ts';
import { filesUnder } from '../helpers/store-state.ts';
import { fetchRaw } from '../helpers/http.ts';
import { buildGeoipDb } from '../fixtures/geoip.ts';

type Context = Parameters<typeof tempDir>[0];

async function originAndMirror(t: Context, os: string) {
  const work = await tempDir(t);
  const data = join(work, 'origin');
  const meta = await buildMetadataTarball(work, { properties: { os, release: '1', architecture: 'amd64' } });
  const squashfs = await buildSquashfs(work, { seed: `${os}-ct`, padMiB: 2 });
  const disk = await buildQcow2(work, { seed: `${os}-vm` });
  const container = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, squashfs.path]));
  const vm = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, disk.path]));
  const origin = await serve(t, data);
  const mirrorData = join(work, 'mirror');
  const mirror = await serve(t, mirrorData, { mirrorOf: origin.base, originCertificate: origin.tls.certPath });
  const cached = async () => (await filesUnder(join(mirrorData, 'cache', 'blobs', 'sha256'))).map((f) => f.split('/').pop()!);
  return { origin, mirror, container, vm, files: [meta.sha256, squashfs.sha256, disk.sha256], cached };
}

const lxdMissing = lxdUnavailable();

test('real lxc copies a container and a VM through a wharf mirror of a wharf origin', { skip: !process.env.CI && lxdMissing }, async (t) => {
  if (lxdMissing) assert.fail(`interop tests must run in CI: ${lxdMissing}`);
  const { origin, mirror, container, vm, files, cached } = await originAndMirror(t, 'Mirrored');
  const lxd = await startLxd(t, [origin.tls.cert, mirror.tls.cert]);
  await lxd.lxcOk(['remote', 'add', 'm', mirror.base, '--protocol=simplestreams']);
  const listed = await lxd.lxcJson<{ fingerprint: string }[]>(['image', 'list', 'm:']);
  assert.deepEqual(listed.map((i) => i.fingerprint).sort(), [container, vm].sort(), 'the index (from the origin) lists both');
  assert.deepEqual(await cached(), [], 'listing downloads no file');

  await lxd.lxcOk(['image', 'copy', 'm:mirrored/1', 'local:', '--alias', 'ct']);
  await lxd.lxcOk(['image', 'copy', 'm:mirrored/1', 'local:', '--vm', '--alias', 'vm']);
  const local = await lxd.lxcJson<{ fingerprint: string; aliases: { name: string }[] }[]>(['image', 'list', 'local:']);
  const fp = (alias: string) => local.find((i) => i.aliases.some((a) => a.name === alias))?.fingerprint;
  assert.equal(fp('ct'), container);
  assert.equal(fp('vm'), vm);
  assert.deepEqual((await cached()).sort(), [...files].sort(), 'the mirror holds exactly the files the daemon downloaded');
  await assertPublishedValid(origin);
});

const incusMissing = incusUnavailable();

test('real incus copies a container and a VM through a wharf mirror, the second daemon from the cache', { skip: !process.env.CI && incusMissing }, async (t) => {
  if (incusMissing) assert.fail(`interop tests must run in CI: ${incusMissing}`);
  const { origin, mirror, container, vm, files, cached } = await originAndMirror(t, 'Edgy');
  const incus = await startIncus(t, [origin.tls.cert, mirror.tls.cert]);
  await incus.incusOk(['remote', 'add', 'm', mirror.base, '--protocol=simplestreams']);
  await incus.incusOk(['image', 'copy', 'm:edgy/1', 'local:', '--alias', 'ct']);
  await incus.incusOk(['image', 'copy', 'm:edgy/1', 'local:', '--vm', '--alias', 'vm']);
  const local = await incus.incusJson<{ fingerprint: string; aliases: { name: string }[] }[]>(['image', 'list', 'local:']);
  const fp = (alias: string) => local.find((i) => i.aliases.some((a) => a.name === alias))?.fingerprint;
  assert.equal(fp('ct'), container);
  assert.equal(fp('vm'), vm);
  assert.deepEqual((await cached()).sort(), [...files].sort());
  // A second copy (after deleting the first) is served from the cache: still the same fingerprint.
  await incus.incusOk(['image', 'delete', 'local:ct']);
  await incus.incusOk(['image', 'copy', 'm:edgy/1', 'local:', '--alias', 'ct-again']);
  const again = await incus.incusJson<{ fingerprint: string; aliases: { name: string }[] }[]>(['image', 'list', 'local:']);
  assert.equal(again.find((i) => i.aliases.some((a) => a.name === 'ct-again'))?.fingerprint, container);
  await assertPublishedValid(origin);
});

test('real lxc and incus copy from the origin while GeoIP sends their downloads to a mirror', { skip: !process.env.CI && (lxdMissing ?? incusMissing) }, async (t) => {
  if (lxdMissing ?? incusMissing) assert.fail(`interop tests must run in CI: ${lxdMissing ?? incusMissing}`);
  const work = await tempDir(t);
  // The daemons connect from loopback: here that is "Germany", which the mirror serves.
  const db = join(work, 'geo.mmdb');
  await buildGeoipDb(db, [{ cidr: '127.0.0.0/8', country: 'DE', continent: 'EU' }]);
  const data = join(work, 'origin');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Steered', release: '1', architecture: 'amd64' } });
  const squashfs = await buildSquashfs(work, { seed: 'steered-ct', padMiB: 3 });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, squashfs.path]));
  const origin = await serve(t, data, { geoipDb: db, siteCheckInterval: 1 });
  const mirrorData = join(work, 'mirror');
  const mirror = await serve(t, mirrorData, { mirrorOf: origin.base, originCertificate: origin.tls.certPath });
  await wharfOk(data, ['site', 'add', 'de', mirror.base, '--country', 'DE']);
  // Healthy, and seen by every serving process of the origin.
  for (let i = 0; ; i++) {
    const probe = await fetchRaw(`${origin.base}/files/${squashfs.sha256}.squashfs`, { ca: origin.tls.cert, method: 'HEAD' });
    if (probe.status === 302) break;
    if (i > 100) assert.fail('the site never became healthy');
    await new Promise((r) => setTimeout(r, 200));
  }
  // One serving process steers now; every one has read the sites 2 s later.
  await new Promise((r) => setTimeout(r, 2_200));
  const heldByMirror = async () => (await filesUnder(join(mirrorData, 'cache', 'blobs', 'sha256'))).map((f) => f.split('/').pop()!);

  const incus = await startIncus(t, [origin.tls.cert, mirror.tls.cert]);
  await incus.incusOk(['remote', 'add', 'o', origin.base, '--protocol=simplestreams']);
  await incus.incusOk(['image', 'copy', 'o:steered/1', 'local:', '--alias', 'ct']);
  const local = await incus.incusJson<{ fingerprint: string; aliases: { name: string }[] }[]>(['image', 'list', 'local:']);
  assert.equal(local.find((i) => i.aliases.some((a) => a.name === 'ct'))?.fingerprint, fp);
  assert.ok((await heldByMirror()).includes(squashfs.sha256), 'the root filesystem came from the mirror');

  const lxd = await startLxd(t, [origin.tls.cert, mirror.tls.cert]);
  await lxd.lxcOk(['remote', 'add', 'o', origin.base, '--protocol=simplestreams']);
  await lxd.lxcOk(['image', 'copy', 'o:steered/1', 'local:', '--alias', 'ct']);
  const lxdLocal = await lxd.lxcJson<{ fingerprint: string; aliases: { name: string }[] }[]>(['image', 'list', 'local:']);
  assert.equal(lxdLocal.find((i) => i.aliases.some((a) => a.name === 'ct'))?.fingerprint, fp);
  await assertPublishedValid(origin);
});
