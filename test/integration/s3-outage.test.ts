/**
 * The object store goes away and comes back (a real OpenStack Swift behind a TCP relay the test
 * cuts): downloads fail cleanly and at once, the index is still served, an import fails with a
 * clear `unavailable` error and leaves nothing behind, and both recover by themselves once the
 * store is back, with no restart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { useS3 } from '../helpers/s3.ts';

/** A TCP relay to `target` that can be cut (every connection dropped, new ones refused) and restored on the same port. */
async function relay(target: URL): Promise<{ url: string; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    server = createServer((client) => {
      const upstream = connect(Number(target.port), target.hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  };
  const cut = async () => {
    const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  await listen();
  return { url: `http://127.0.0.1:${port}`, cut, restore: listen, close: cut };
}

test('S3 unreachable: downloads fail cleanly, the index is served, imports fail as unavailable and leave nothing; back, everything works again by itself', async (t) => {
  const work = await tempDir(t);
  const blobStore = await useS3();
  const engine = new URL(process.env.AWS_ENDPOINT_URL_S3!);
  const cable = await relay(engine);
  t.after(() => cable.close());
  // wharf (the server here, the CLI as children) reaches the store through the relay only.
  process.env.AWS_ENDPOINT_URL_S3 = cable.url;
  t.after(() => void (process.env.AWS_ENDPOINT_URL_S3 = engine.href));
  const data = join(work, 'data');
  const cli = (args: string[]) => wharf(data, ['--blob-store', blobStore, '--s3-path-style', ...args]);
  const meta = await buildMetadataTarball(work, { properties: { os: 'Outage', release: '1', architecture: 'amd64' } });
  const root = await buildSquashfs(work, { seed: 'outage' });
  const fp = fingerprintFrom(await wharfOk(data, ['--blob-store', blobStore, '--s3-path-style', 'image', 'import', meta.path, root.path]));
  const server = await serve(t, data, { blobStore, s3PathStyle: true, processes: 1 });
  const get = (path: string) => fetchRaw(server.base + path, { ca: server.tls.cert });
  const rootPath = /"path":\s*"(files\/[0-9a-f]{64}\.squashfs)"/.exec((await get('/streams/v1/images.json')).body.toString())![1]!;
  assert.equal((await get(`/${rootPath}`)).status, 200);

  await cable.cut();
  const started = Date.now();
  const download = await get(`/${rootPath}`);
  assert.ok(download.status >= 500 && download.status < 600, `a download answers a server error: ${download.status}`);
  assert.match(download.body.toString(), /blob store cannot be reached/);
  assert.ok(Date.now() - started < 20_000, `and at once, not after the clients' 30 s header timeout: ${Date.now() - started} ms`);
  const index = await get('/streams/v1/images.json');
  assert.equal(index.status, 200, 'the index is served from memory');
  assert.ok(index.body.toString().includes(fp));

  const other = await buildSquashfs(work, { name: 'other.squashfs', seed: 'other' });
  const refused = await cli(['image', 'import', meta.path, other.path, '--alias', 'during']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /blob store cannot be reached/);
  assert.doesNotMatch(refused.stderr, /at .*\.ts:\d+/, 'a clear error, not a stack trace');

  await cable.restore();
  // Back: the same server serves again without a restart, and the failed import left nothing.
  const back = await get(`/${rootPath}`);
  assert.equal(back.status, 200);
  assert.equal(createHash('sha256').update(back.body).digest('hex'), root.sha256);
  const listed = JSON.parse(await wharfOk(data, ['--blob-store', blobStore, '--s3-path-style', 'image', 'list', '--format', 'json'])) as { fingerprint: string; aliases: { name: string }[] }[];
  assert.deepEqual(listed.map((i) => i.fingerprint), [fp], 'no image from the failed import');
  const again = await cli(['image', 'import', meta.path, other.path, '--alias', 'during']);
  assert.equal(again.code, 0, again.stderr);
});
