/**
 * An upstream reached with credentials in its URL (`https://user:password@host`, how an operator
 * reaches a protected upstream): they are used, and shown nowhere else: no error answer to an
 * anonymous client, no log line, no listing or API field, unless the operator asks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { capturingLogger, fingerprintFrom, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { startFaultServer } from '../helpers/fault-server.ts';

const password = 's3cr3t-Pa55';
const user = 'mirror-bot';

test("an upstream's credentials reach no error answer, log line, listing or API field", async (t) => {
  const work = await tempDir(t);
  const source = join(work, 'source');
  const roots: { sha256: string }[] = [];
  for (const name of ['one', 'two', 'three']) {
    const meta = await buildMetadataTarball(work, { name: `m-${name}.tar.xz`, properties: { os: `Os${name}`, release: '1', architecture: 'amd64' } });
    const root = await buildSquashfs(work, { name: `s-${name}.squashfs`, seed: name });
    fingerprintFrom(await wharfOk(source, ['image', 'import', meta.path, root.path]));
    roots.push(root);
  }
  const tree = join(work, 'tree');
  await wharfOk(source, ['tree', 'export', tree]);
  const upstream = await startFaultServer(tree);
  t.after(() => upstream.close());
  upstream.basicAuth = `${user}:${password}`;
  const withCredentials = upstream.base.replace('://', `://${user}:${password}@`);

  const data = join(work, 'data');
  await wharfOk(data, ['remote', 'add', 'up', withCredentials]);
  await wharfOk(data, ['mirror', 'add', 'lz', 'up', '--lazy']);
  await wharfOk(data, ['mirror', 'sync']);
  assert.ok(upstream.requests.length > 0 && upstream.requests.every((p) => !p.startsWith('files/')), 'the sync read the index, with the credentials');

  // Listings: redacted unless asked for.
  for (const format of ['table', 'json', 'yaml', 'csv']) {
    const listed = await wharfOk(data, ['remote', 'list', '--format', format]);
    assert.ok(!listed.includes(password) && !listed.includes(user), `remote list --format ${format}: ${listed}`);
    assert.match(listed, /REDACTED@127\.0\.0\.1/);
  }
  assert.ok((await wharfOk(data, ['remote', 'list', '--show-secrets'])).includes(`${user}:${password}@`), 'the operator can still see them when asking');

  // A sync that fails: its error, on the terminal and in `mirror list`, names the upstream without them.
  upstream.faults.set('streams/v1/images.json', 'status500');
  const failed = await wharf(data, ['mirror', 'sync']);
  assert.notEqual(failed.code, 0);
  assert.match(failed.stderr, /HTTP 500/);
  const mirrors = await wharfOk(data, ['mirror', 'list', '--format', 'json']);
  for (const text of [failed.stderr, failed.stdout, mirrors]) assert.ok(!text.includes(password) && !text.includes(user), text);
  upstream.faults.clear();

  // Anonymous clients asking for lazily mirrored files the upstream no longer has, breaks or corrupts.
  const { log, records } = capturingLogger();
  const server = await serve(t, data, { log, processes: 1 });
  const path = (root: { sha256: string }) => `files/${root.sha256}.squashfs`;
  upstream.faults.set(path(roots[0]!), 'missing');
  upstream.faults.set(path(roots[1]!), 'status500');
  upstream.faults.set(path(roots[2]!), 'corrupt');
  for (const root of roots) {
    const answer = await fetchRaw(`${server.base}/${path(root)}`, { ca: server.tls.cert });
    assert.equal(answer.status, 502, `${path(root)}: ${answer.body.toString()}`);
    const body = answer.body.toString();
    assert.ok(!body.includes(password) && !body.includes(user), body);
    assert.match(body, /REDACTED@127\.0\.0\.1|HTTP|mismatch/);
  }
  assert.ok(upstream.requests.filter((p) => p.startsWith('files/')).length >= 3, 'the files were asked for upstream');

  // The LXD API shows every client the image's update source: without the credentials.
  const images = await fetchRaw(`${server.base}/1.0/images?recursion=1`, { ca: server.tls.cert });
  assert.equal(images.status, 200);
  const listed = JSON.parse(images.body.toString()) as { metadata: { update_source?: { server: string } }[] };
  assert.ok(listed.metadata.length === 3 && listed.metadata.every((i) => i.update_source?.server.includes('REDACTED@')), images.body.toString());
  assert.ok(!images.body.toString().includes(password));

  await server.close();
  const lines = records.map((r) => JSON.stringify(r));
  assert.ok(lines.some((l) => l.includes('lazy fetch failed')), 'the failures were logged');
  for (const line of lines) assert.ok(!line.includes(password) && !line.includes(`${user}:`), line);
});
