/**
 * `wharf backup DIR` while the server runs: the copy restores into a working data directory
 * once the listed blobs are copied beside it (same images, verified bytes, same certificate and
 * statistics); a non-empty target is refused and left alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';

test('a backup taken while serving restores the store, its certificate and its statistics', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Kept', release: '1', architecture: 'amd64' } });
  const rootfs = await buildSquashfs(work, { seed: 'kept' });
  const fingerprint = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, rootfs.path, '--alias', 'kept']));
  const server = await serve(t, data, { processes: 1 });
  assert.equal((await fetchRaw(`${server.base}/files/${rootfs.sha256}.squashfs`, { ca: server.tls.cert })).status, 200);
  // As SIGTERM does: connections finish what they were sending (a download counts once its
  // last bytes were handed to the socket, which can be just after the client has them all).
  await server.close(5_000);
  const again = await serve(t, data, { processes: 1 });
  // The registry's content is in the backup too: a config blob and the manifest naming it.
  const password = (await wharfOk(data, ['oci', 'user', 'add', 'ci', '--push', 'apps/*'])).trim();
  const auth = { authorization: `Basic ${Buffer.from(`ci:${password}`).toString('base64')}` };
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  await fetchRaw(`${again.base}/v2/apps/kept/blobs/uploads/?digest=sha256:${sha(config)}`, { ca: again.tls.cert, method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: config });
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha(config)}`, size: config.length }, layers: [] }));
  assert.equal((await fetchRaw(`${again.base}/v2/apps/kept/manifests/1`, { ca: again.tls.cert, method: 'PUT', headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest })).status, 201);

  const backup = join(work, 'backup');
  const out = await wharfOk(data, ['backup', backup]);
  assert.match(out, /4 blobs/);
  assert.deepEqual((await readdir(backup)).sort(), ['blobs.txt', 'server.crt', 'server.key', 'usage.db', 'wharf.db']);
  const listed = (await readFile(join(backup, 'blobs.txt'), 'utf8')).trim().split('\n').map((l) => l.split(' '));
  assert.deepEqual(listed.map(([sha]) => sha).sort(), [meta.sha256, rootfs.sha256, sha(config), sha(manifest)].sort());

  // Restore: the backup's files, then the listed blobs copied as files.
  const restored = join(work, 'restored');
  await mkdir(restored);
  for (const name of await readdir(backup)) if (name !== 'blobs.txt') await copyFile(join(backup, name), join(restored, name));
  for (const [, , path] of listed) {
    await mkdir(join(restored, path!, '..'), { recursive: true });
    await copyFile(join(data, path!), join(restored, path!));
  }
  assert.match(await wharfOk(restored, ['image', 'info', 'kept']), new RegExp(`Fingerprint: ${fingerprint}[\\s\\S]*Downloads: 1 `));
  await wharfOk(restored, ['image', 'verify']);
  assert.equal(await readFile(join(restored, 'server.crt'), 'utf8'), again.tls.cert, 'the same certificate, so pinned clients still trust it');
  const restoredServer = await serve(t, restored, { processes: 1 });
  const pulled = await fetchRaw(`${restoredServer.base}/v2/apps/kept/manifests/1`, { ca: restoredServer.tls.cert });
  assert.ok(pulled.status === 200 && pulled.body.equals(manifest), 'the registry restored too');

  // A target that holds anything is refused, untouched.
  const busy = join(work, 'busy-dir');
  await mkdir(busy);
  await writeFile(join(busy, 'keep'), 'mine');
  const refused = await wharf(data, ['backup', busy]);
  assert.equal(refused.code, 73);
  assert.match(refused.stderr, /is not empty/);
  assert.deepEqual(await readdir(busy), ['keep']);

  // A data directory that holds no store is not backed up as if it were an empty one.
  const none = await wharf(join(work, 'no-store'), ['backup', join(work, 'backup-of-nothing')]);
  assert.equal(none.code, 64);
  assert.match(none.stderr, /holds no wharf store/);
});
