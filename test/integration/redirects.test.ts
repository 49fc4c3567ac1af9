/**
 * Redirects from an upstream, as images.linuxcontainers.org sends downloads to its mirrors: wharf
 * follows them as the clients do (the bytes still checked against the index), but only to http(s),
 * and not forever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { startFaultServer } from '../helpers/fault-server.ts';

test('copies follow an upstream redirect to a mirror; redirects to other schemes or in circles fail cleanly', async (t) => {
  const work = await tempDir(t);
  const source = join(work, 'source');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Moved', release: '1', architecture: 'amd64' } });
  const root = await buildSquashfs(work, { seed: 'moved' });
  const fp = fingerprintFrom(await wharfOk(source, ['image', 'import', meta.path, root.path, '--alias', 'moved']));
  const tree = join(work, 'tree');
  await wharfOk(source, ['tree', 'export', tree]);
  const origin = await startFaultServer(tree);
  const mirror = await startFaultServer(tree);
  t.after(() => Promise.all([origin.close(), mirror.close()]).then(() => {}));
  const rootPath = `files/${root.sha256}.squashfs`;

  const data = join(work, 'data');
  await wharfOk(data, ['remote', 'add', 'up', origin.base]);
  origin.redirects.set(rootPath, 'file:///etc/passwd');
  const refused = await wharf(data, ['image', 'copy', 'up:moved']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /redirects to something other than an http\(s\) URL/);
  origin.redirects.set(rootPath, `${origin.base}/${rootPath}`);
  const circle = await wharf(data, ['image', 'copy', 'up:moved']);
  assert.notEqual(circle.code, 0);
  assert.match(circle.stderr, /more than 10 redirects/);
  assert.deepEqual(JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])), []);

  origin.redirects.set(rootPath, `${mirror.base}/${rootPath}`);
  assert.match(await wharfOk(data, ['image', 'copy', 'up:moved']), new RegExp(fp.slice(0, 12)));
  assert.deepEqual(mirror.requests, [rootPath], 'the file came from where the origin sent it');
});
