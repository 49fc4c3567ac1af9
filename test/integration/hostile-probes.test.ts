/**
 * A hostile client against a real server: path traversal on every route family, private images
 * probed on every route an untrusted client can reach (they must look exactly like missing ones),
 * secrets misused, odd Range headers, and malformed bodies from a trusted client (4xx with an LXD
 * error envelope, never a 500, and the store unchanged).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:tls';
import selfsigned from 'selfsigned';
import { buildMetadataTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, trustedClient, wharfOk } from '../helpers/env.ts';
import { apiCaller, fetchRaw, type Response } from '../helpers/http.ts';

interface Who {
  cert: string;
  private: string;
}

/** A request written byte for byte on a TLS socket: no client library normalizes the path. */
function rawRequest(port: number, ca: string, head: string, who?: Who): Promise<{ status: number; headers: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...(who ? { cert: who.cert, key: who.private } : {}) }, () => {
      socket.write(Buffer.from(head, 'latin1'));
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    // A server that refuses a request it is still receiving closes on the sender, who sees a
    // reset: that counts as what was read by then (status 0 if nothing), and callers judge it.
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') reject(err);
    });
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      const headers = all.subarray(0, split).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1] ?? 0);
      resolve({ status, headers, body: all.subarray(split + 4) });
    });
  });
}

const json = (r: { body: Buffer }) => JSON.parse(r.body.toString()) as Record<string, unknown>;

function assertLxdError(r: { status: number; body: Buffer }, status: number | RegExp, what: string) {
  if (typeof status === 'number') assert.equal(r.status, status, `${what}: status (${r.body.toString().slice(0, 200)})`);
  else assert.match(String(r.status), status, `${what}: status (${r.body.toString().slice(0, 200)})`);
  const body = json(r);
  assert.equal(body.type, 'error', `${what}: LXD error envelope`);
  assert.equal(body.error_code, r.status, `${what}: error_code`);
  assert.ok(typeof body.error === 'string' && body.error.length > 0, `${what}: error message`);
}

async function setup(t: Parameters<typeof tempDir>[0]) {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Public', release: '1', variant: 'default' } });
  const squashfs = await buildSquashfs(work, { seed: 'probe', padMiB: 0.25 });
  const publicFp = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, squashfs.path, '--alias', 'pub']));
  const unifiedPublic = await buildUnified(work, { properties: { os: 'Open', release: '2' }, seed: 'open', name: 'open.tar.gz' });
  const openFp = fingerprintFrom(await wharfOk(data, ['image', 'import', unifiedPublic.path, '--alias', 'open']));
  const admin = await trustedClient(work, data);
  const stranger = await selfsigned.generate([{ name: 'commonName', value: 'stranger' }], { keyType: 'ec' });
  const server = await serve(t, data);
  const call = apiCaller(server);
  return { work, data, server, admin, stranger, call, publicFp, openFp, squashfs, meta, unifiedPublic };
}

test('path traversal on every route family finds nothing and breaks nothing', async (t) => {
  const { server, data, squashfs, stranger, call } = await setup(t);
  const secrets = [await readFile(join(data, 'server.key'), 'latin1').catch(() => ''), 'SQLite format 3', '-----BEGIN'].filter(Boolean);
  const dotdot = ['..', '%2e%2e', '%2E%2E', '.%2e', '%252e%252e', '%c0%ae%c0%ae', '%e0%80%ae%e0%80%ae', '..%00', '%2e%2e%00'];
  const slash = ['/', '%2f', '%2F', '%252f', '\\', '%5c', '%c0%af', '%e0%80%af'];
  const targets = ['wharf.db', 'server.key', 'config.yaml', 'etc/passwd', `blobs/sha256/${squashfs.sha256.slice(0, 2)}/${squashfs.sha256}`];
  const prefixes = ['/files/', '/streams/v1/', '/1.0/images/', '/1.0/images/aliases/', '/direct/', '/'];
  const paths: string[] = [];
  for (const prefix of prefixes) {
    for (const [i, d] of dotdot.entries()) {
      const s = slash[i % slash.length]!;
      const target = targets[i % targets.length]!;
      paths.push(`${prefix}${`${d}${s}`.repeat(6)}${target}`);
    }
    paths.push(`${prefix}${squashfs.sha256}.squashfs%00.json`, `${prefix}index.json%00`, `${prefix}%00`, `${prefix}%`, `${prefix}%zz`, `${prefix}${'a/'.repeat(1000)}`);
  }
  paths.push(`/files/${squashfs.sha256}.squashfs/..%2f..%2fwharf.db`, `/1.0/images/${squashfs.sha256}/export/../../..`, `/1.0/${'..%2f'.repeat(10)}wharf.db`);

  const failures: string[] = [];
  for (const path of paths) {
    for (const who of [undefined, stranger]) {
      const r = await rawRequest(server.httpsPort, server.tls.cert, `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`, who);
      for (const s of secrets) assert.ok(!r.body.toString('latin1').includes(s.slice(0, 64)), `${path}: leaks ${s.slice(0, 20)}`);
      try {
        assert.ok(r.status >= 400 && r.status < 500, `status ${r.status}`);
        if (path.startsWith('/1.0')) assertLxdError({ status: r.status, body: r.body }, r.status, path);
        // Even what the HTTP framework refuses before routing carries its request id.
        assert.match(r.headers, /\r\nx-request-id: [0-9a-f]{16}(\r\n|$)/i, 'X-Request-Id');
      } catch {
        failures.push(`${who ? 'stranger' : 'anonymous'} GET ${path.slice(0, 120)}: ${r.status} ${r.body.toString().slice(0, 160)}`);
      }
    }
  }
  assert.deepEqual(failures, [], `not a clean 4xx (an LXD error under /1.0):\n${failures.join('\n')}`);
  // A path longer than any header budget is refused by the parser, not by a crash.
  const long = await rawRequest(server.httpsPort, server.tls.cert, `GET /files/${'a'.repeat(200_000)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  assert.ok(long.status === 0 || (long.status >= 400 && long.status < 500), `very long path: ${long.status}`);
  // The server is still answering.
  assert.equal((await fetchRaw(`${server.base}/streams/v1/index.json`, { ca: server.tls.cert })).status, 200);
  // Refusals the routes raise go through the same renderer: LXD's envelope, the catalogue's status.
  assertLxdError(await call(stranger, 'GET', '/1.0/images?project=other'), 404, 'another project');
  assert.equal(json(await call(stranger, 'GET', '/1.0/images?project=other')).error, 'Project not found');
  assertLxdError(await call(stranger, 'GET', '/1.0/operations/nothing/wait'), 403, 'waiting without a secret');
  assertLxdError(await call(stranger, 'GET', '/1.0/certificates'), 403, 'certificates');
  assertLxdError(await call(stranger, 'POST', '/1.0/certificates', '{}'), 403, 'joining without a token');
  assertLxdError(await call(stranger, 'GET', '/1.0/nothing'), 404, 'no such route');
  assert.deepEqual(json(await call(stranger, 'GET', '/streams/v1/nothing.json')), { error: 'not found' });
});

test('a private image looks exactly like a missing one on every untrusted route', async (t) => {
  const { work, data, server, admin, stranger, call, publicFp, openFp } = await setup(t);
  const untrustedViews = [
    '/1.0/images',
    '/1.0/images?recursion=1',
    '/1.0/images?recursion=2',
    '/1.0/images?filter=' + encodeURIComponent('properties.os eq Secret'),
    '/1.0/images?recursion=1&filter=' + encodeURIComponent('public eq false'),
    '/1.0/images/aliases',
    '/1.0/images/aliases?recursion=1',
    '/streams/v1/index.json',
    '/streams/v1/images.json',
  ];
  const snapshot = async () => {
    const out: Record<string, string> = {};
    for (const who of [undefined, stranger]) {
      for (const path of untrustedViews) {
        const r = await call(who, 'GET', path);
        out[`${who ? 'stranger' : 'anonymous'} ${path}`] = `${r.status} ${r.headers.etag ?? ''} ${r.body.toString()}`;
      }
    }
    return out;
  };
  const before = await snapshot();

  const secret = await buildUnified(work, { properties: { os: 'Secret', release: '1' }, seed: 'secret', name: 'secret.tar.gz' });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', secret.path, '--private', '--alias', 'hidden', '--alias', 'also/hidden']));
  const other = await buildUnified(work, { properties: { os: 'Covert', release: '1' }, seed: 'covert', name: 'covert.tar.gz' });
  const otherFp = fingerprintFrom(await wharfOk(data, ['image', 'import', other.path, '--private', '--alias', 'covert']));
  // Wait for the server to see the change (the admin's view lists both).
  for (let i = 0; ; i++) {
    const list = (await call(admin, 'GET', '/1.0/images')).body.toString();
    if (list.includes(fp) && list.includes(otherFp)) break;
    assert.ok(i < 100, 'the server never saw the private images');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(await snapshot(), before, 'lists and indexes are byte-identical with and without the private images');

  // Every per-image route: the private image, and a made-up one, must answer alike.
  const missingFp = randomBytes(32).toString('hex');
  const routes = (id: string, alias: string) => [
    ['GET', `/1.0/images/${id}`],
    ['GET', `/1.0/images/${id.slice(0, 12)}`],
    ['GET', `/1.0/images/${id}/export`],
    ['HEAD', `/1.0/images/${id}/export`],
    ['GET', `/1.0/images/${id}?secret=`],
    ['GET', `/1.0/images/${id}?secret=${'0'.repeat(64)}`],
    ['GET', `/1.0/images?filter=${encodeURIComponent(`fingerprint eq ${id}`)}`],
    ['GET', `/1.0/images?recursion=1&filter=${encodeURIComponent(`fingerprint eq ${id}`)}`],
    ['GET', `/1.0/images/aliases/${alias}`],
    ['GET', `/1.0/images/aliases/${encodeURIComponent(`also/${alias}`)}`],
    ['GET', `/direct/${alias}`],
    ['HEAD', `/direct/${alias}`],
    ['GET', `/files/${id}.tar.gz`],
    ['HEAD', `/files/${id}.tar.gz`],
    ['GET', `/files/${id}`],
    ['POST', `/1.0/images/${id}/secret`],
    ['DELETE', `/1.0/images/${id}`],
  ];
  const normalize = (body: Buffer, id: string, alias: string) => body.toString().replaceAll(id, 'ID').replaceAll(id.slice(0, 12), 'ID12').replaceAll(alias, 'ALIAS');
  const hidden = routes(fp, 'hidden');
  const missing = routes(missingFp, 'nosuch');
  for (const who of [undefined, stranger]) {
    for (const [i, [method, path]] of hidden.entries()) {
      const a = await call(who, method!, path!);
      const b = await call(who, missing[i]![0]!, missing[i]![1]!);
      assert.equal(a.status, b.status, `${method} ${path}: status ${a.status} vs missing ${b.status}`);
      assert.equal(normalize(a.body, fp, 'hidden'), normalize(b.body, missingFp, 'nosuch'), `${method} ${path}: body`);
      assert.equal(a.headers['content-type'], b.headers['content-type'], `${method} ${path}: content type`);
    }
    // The product alias of the private image (secret/1) is no more than a name nobody uses.
    for (const alias of ['secret/1', 'secret']) {
      const a = await call(who, 'GET', `/direct/${alias}`);
      const b = await call(who, 'GET', '/direct/nosuch/1');
      assert.equal(a.status, 404);
      assert.equal(a.body.toString().replaceAll(alias, 'A'), b.body.toString().replaceAll('nosuch/1', 'A'));
    }
  }
  // Prefix lookups: one hex digit at a time, only the public images answer.
  for (const digit of '0123456789abcdef') {
    const visible = [publicFp, openFp].filter((f) => f.startsWith(digit));
    const r = await call(stranger, 'GET', `/1.0/images/${digit}`);
    assert.equal(r.status, visible.length === 1 ? 200 : 404, `prefix ${digit}`);
    if (visible.length === 1) assert.equal((json(r).metadata as { fingerprint: string }).fingerprint, visible[0]);
  }

  // Secrets: one for image A opens A only, and only A.
  const minted = await call(admin, 'POST', `/1.0/images/${fp}/secret`, '{}');
  const secretA = ((json(minted).metadata as { metadata: { secret: string } }).metadata).secret;
  for (const path of [`/1.0/images/${otherFp}`, `/1.0/images/${otherFp}/export`, '/1.0/images/aliases/covert', '/direct/covert']) {
    assert.equal((await call(stranger, 'GET', `${path}?secret=${secretA}`)).status, 404, `secret of A on ${path}`);
  }
  const listed = await call(stranger, 'GET', `/1.0/images?recursion=1&secret=${secretA}`);
  assert.ok(!listed.body.toString().includes(fp), 'a secret does not list the image');
  assert.equal((await call(stranger, 'GET', `/1.0/images/aliases/hidden?secret=${secretA}`)).status, 404, 'nor open its alias');
  assert.equal((await call(stranger, 'GET', `/files/${fp}.tar.gz?secret=${secretA}`)).status, 404, 'nor its simplestreams file');
  // On a public image a secret is simply irrelevant, and not spent.
  assert.equal((await call(stranger, 'GET', `/1.0/images/${openFp}/export?secret=${secretA}`)).status, 200);
  assert.equal((await call(stranger, 'GET', `/1.0/images/${fp}?secret=${secretA}`)).status, 200, 'the secret still opens its own image');
  assert.equal((await call(stranger, 'GET', `/1.0/images/${fp}?secret=${secretA.toUpperCase()}`)).status, 404, 'secrets are exact');
  assert.equal((await call(stranger, 'GET', `/1.0/images/${fp}?secret=${secretA.slice(0, 63)}`)).status, 404, 'a prefix is not the secret');
  assert.equal((await call(stranger, 'GET', `/1.0/images/${fp}?secret=${secretA}&secret=${secretA}`)).status, 404, 'a repeated secret parameter is no secret');
});

test('Range headers: 206, 416 or the whole file, always with the right bytes', async (t) => {
  const { server, squashfs } = await setup(t);
  const bytes = await readFile(squashfs.path);
  const size = bytes.length;
  const path = `${server.base}/files/${squashfs.sha256}.squashfs`;
  const get = (headers: Record<string, string>) => fetchRaw(path, { ca: server.tls.cert, headers });
  const etag = `"${squashfs.sha256}"`;
  type Expect = { status: 206; start: number; end: number } | { status: 416 } | { status: 200 };
  const cases: [Record<string, string>, Expect][] = [
    [{ range: 'bytes=0-0' }, { status: 206, start: 0, end: 0 }],
    [{ range: `bytes=${size - 1}-` }, { status: 206, start: size - 1, end: size - 1 }],
    [{ range: `bytes=10-${size + 1000}` }, { status: 206, start: 10, end: size - 1 }],
    [{ range: 'bytes=0-99999999999999999999999' }, { status: 206, start: 0, end: size - 1 }],
    [{ range: `bytes=-${size * 10}` }, { status: 206, start: 0, end: size - 1 }],
    [{ range: 'bytes=-99999999999999999999999' }, { status: 206, start: 0, end: size - 1 }],
    [{ range: 'bytes=-1' }, { status: 206, start: size - 1, end: size - 1 }],
    [{ range: ' bytes=5-9 ' }, { status: 206, start: 5, end: 9 }],
    [{ range: 'bytes=-0' }, { status: 416 }],
    [{ range: `bytes=${size}-` }, { status: 416 }],
    [{ range: 'bytes=99999999999999999999999-' }, { status: 416 }],
    [{ range: 'bytes=9-5' }, { status: 416 }],
    // Multiple ranges are allowed to be answered with the whole file (RFC 9110 §14.2).
    [{ range: 'bytes=0-1,5-6' }, { status: 200 }],
    [{ range: 'bytes=0-1, -5' }, { status: 200 }],
    [{ range: 'bytes=a-b' }, { status: 200 }],
    [{ range: 'bytes=0x10-0x20' }, { status: 200 }],
    [{ range: 'bytes=1e3-2e3' }, { status: 200 }],
    [{ range: 'bytes=-' }, { status: 200 }],
    [{ range: 'bytes=--5' }, { status: 200 }],
    [{ range: 'bytes=5' }, { status: 200 }],
    [{ range: 'items=0-5' }, { status: 200 }],
    [{ range: 'bytes=\u0660-\u0669' }, { status: 200 }],
    [{ range: 'bytes=0-5', 'if-range': '"not-the-etag"' }, { status: 200 }],
    [{ range: 'bytes=0-5', 'if-range': 'Wed, 21 Oct 2015 07:28:00 GMT' }, { status: 200 }],
    [{ range: 'bytes=0-5', 'if-range': etag }, { status: 206, start: 0, end: 5 }],
  ];
  for (const [headers, expect] of cases) {
    let r: Response;
    try {
      r = await get(headers);
    } catch (err) {
      // Node refuses to send some headers (non-latin1); that is the client's business.
      if ((err as { code?: string }).code === 'ERR_INVALID_CHAR') continue;
      throw err;
    }
    const what = JSON.stringify(headers);
    assert.equal(r.status, expect.status, what);
    if (expect.status === 206) {
      assert.equal(r.headers['content-range'], `bytes ${expect.start}-${expect.end}/${size}`, what);
      assert.equal(r.headers['content-length'], String(expect.end - expect.start + 1), what);
      assert.deepEqual(r.body, bytes.subarray(expect.start, expect.end + 1), what);
    } else if (expect.status === 416) {
      assert.equal(r.headers['content-range'], `bytes */${size}`, what);
      // An error like any other: its message, and none of the headers of the file it is not.
      assert.match(JSON.parse(r.body.toString()).error, /outside the \d+ bytes/, what);
      assert.equal(r.headers.etag, undefined, what);
      assert.equal(r.headers['cache-control'], undefined, what);
    } else {
      assert.equal(r.headers['content-range'], undefined, what);
      assert.equal(r.headers['content-length'], String(size), what);
      assert.deepEqual(r.body, bytes, what);
    }
  }
});

test('malformed bodies from a trusted client: 4xx with an LXD error, never a 500, store unchanged', async (t) => {
  const { data, admin, stranger, call, openFp, server } = await setup(t);
  const before = await wharfOk(data, ['image', 'list', '--format', 'json']);
  const aliasesBefore = await wharfOk(data, ['image', 'alias', 'list', '--format', 'json']);
  const big = JSON.stringify({ name: 'x', target: openFp, description: 'x'.repeat(2 * 1024 * 1024) });
  const cases: [string, string, string | Buffer, Record<string, string>?][] = [
    ['POST', '/1.0/images', '{'],
    ['POST', '/1.0/images', '{"source": '],
    ['POST', '/1.0/images', 'null'],
    ['POST', '/1.0/images', '[]'],
    ['POST', '/1.0/images', '"text"'],
    ['POST', '/1.0/images', '{"source": "x"}'],
    ['POST', '/1.0/images', '{"source": {"type": "image", "mode": "pull"}}'],
    ['POST', '/1.0/images', '{"source": {"type": "image", "mode": "push"}, "aliases": "x"}'],
    ['POST', '/1.0/images', `{"source": {"type": "image", "mode": "push", "fingerprint": "${openFp}"}, "aliases": "x"}`],
    ['POST', '/1.0/images', `{"source": {"type": "image", "mode": "push", "fingerprint": "${openFp}"}, "aliases": [null, 5]}`],
    ['POST', '/1.0/images', '{"source": {"type": "image", "server": 5, "protocol": "lxd"}}'],
    ['POST', '/1.0/images', 'name=x', { 'content-type': 'application/x-www-form-urlencoded' }],
    ['POST', '/1.0/images', '{}', { 'content-type': 'text/plain' }],
    ['POST', '/1.0/images', 'not a tarball at all', { 'content-type': 'application/octet-stream' }],
    ['POST', '/1.0/images', '--b\r\n\r\n--b--', { 'content-type': 'multipart/form-data' }],
    ['POST', '/1.0/images', '--b\r\nContent-Disposition: form-data; name="evil"; filename="../../x"\r\n\r\nx\r\n--b--\r\n', { 'content-type': 'multipart/form-data; boundary=b' }],
    ['PUT', `/1.0/images/${openFp}`, '{'],
    ['PUT', `/1.0/images/${openFp}`, '{"expires_at": 5}'],
    ['PUT', `/1.0/images/${openFp}`, '{"expires_at": "not a date"}'],
    ['PUT', `/1.0/images/${openFp}`, '{"properties": "x"}'],
    ['PUT', `/1.0/images/${openFp}`, '{"properties": {"a": {"b": 1}}}'],
    ['PUT', `/1.0/images/${openFp}`, '{"public": "yes", "properties": {}}'],
    ['PATCH', `/1.0/images/${openFp}`, '{"properties": ["a"]}'],
    ['PATCH', `/1.0/images/${openFp}`, '{"expires_at": {}}'],
    ['PATCH', `/1.0/images/${openFp}`, '{"auto_update": "sometimes"}'],
    ['PATCH', `/1.0/images/${openFp}`, '[1, 2]'],
    ['POST', '/1.0/images/aliases', '{'],
    ['POST', '/1.0/images/aliases', `{"name": 5, "target": "${openFp}"}`],
    ['POST', '/1.0/images/aliases', `{"name": ["x"], "target": "${openFp}"}`],
    ['POST', '/1.0/images/aliases', '{"name": "x", "target": 5}'],
    ['POST', '/1.0/images/aliases', '{"name": "x", "target": {"fingerprint": "a"}}'],
    ['POST', '/1.0/images/aliases', `{"name": "x", "target": "${openFp}", "description": {"a": 1}}`],
    ['POST', '/1.0/images/aliases', big],
    ['POST', '/1.0/images/aliases', '{}', { 'content-type': 'application/xml' }],
    ['POST', '/1.0/images/aliases/open', '{"name": 5}'],
    ['POST', '/1.0/images/aliases/open', '{"name": {"x": 1}}'],
    ['POST', '/1.0/images/aliases/open', '{'],
    ['POST', `/1.0/images/${openFp}/secret`, '{'],
  ];
  // Joining needs a client that is not trusted yet.
  const joins = ['{"trust_token": 5}', '{"password": {"a": 1}}', '{"trust_token": "not-a-token"}', '{"trust_token": ""}', '{'];
  const failures: string[] = [];
  for (const [method, path, body, headers] of cases) {
    const r = await call(admin, method, path, body, headers);
    try {
      assertLxdError(r, /^4\d\d$/, method);
    } catch {
      failures.push(`${method} ${path.replace(openFp, 'FP')} ${String(body).slice(0, 100)} ${headers ? JSON.stringify(headers) : ''}: ${r.status} ${r.body.toString().slice(0, 160)}`);
    }
  }
  for (const body of joins) {
    const r = await call(stranger, 'POST', '/1.0/certificates', body);
    try {
      assertLxdError(r, /^4\d\d$/, 'POST');
    } catch {
      failures.push(`untrusted POST /1.0/certificates ${body}: ${r.status} ${r.body.toString().slice(0, 160)}`);
    }
  }
  assert.equal(JSON.parse((await call(stranger, 'GET', '/1.0')).body.toString()).metadata.auth, 'untrusted', 'no bad join made the stranger trusted');
  const after = await wharfOk(data, ['image', 'list', '--format', 'json']);
  if (after !== before) failures.push(`images changed:\n  before ${before.trim()}\n  after  ${after.trim()}`);
  assert.equal(await wharfOk(data, ['image', 'alias', 'list', '--format', 'json']), aliasesBefore, 'aliases unchanged');
  const listing = await call(admin, 'GET', '/1.0/images?recursion=1');
  if (listing.status !== 200) failures.push(`the API no longer lists: ${listing.status} ${listing.body.toString().slice(0, 160)}`);
  const index = await fetchRaw(`${server.base}/streams/v1/images.json`, { ca: server.tls.cert });
  if (index.status !== 200) failures.push(`simplestreams no longer answers: ${index.status}`);
  assert.deepEqual(failures, [], `not a 4xx LXD error, or the store changed:\n${failures.join('\n')}`);
});
