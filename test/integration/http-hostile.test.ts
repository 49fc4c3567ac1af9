/** Hostile and odd HTTP clients, driven over raw sockets on loopback: every wait is bounded. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { readFile, readdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { listenDual, listenPlain, type ListenOptions } from '../../src/http/listen.ts';
import { ConnectionBudget } from '../../src/http/connection-budget.ts';
import { parseHost } from '../../src/http/base-url.ts';
import { Operations } from '../../src/http/lxd/operations.ts';
import { SqliteGrantStore } from '../../src/meta/grants-sqlite.ts';
import { operation } from '../../src/http/lxd/envelope.ts';
import { openLxdImage } from '../../src/remote/lxd.ts';
import { withoutSecrets } from '../../src/remote/fetch.ts';
import { loadConfig } from '../../src/config.ts';
import { startServer } from '../../src/server.ts';
import { silentLogger } from '../../src/log.ts';
import { baseApp } from '../../src/http/app.ts';
import { sendRendered } from '../../src/http/send-rendered.ts';
import { renderBytes } from '../../src/web/rendered.ts';
import { buildMetadataTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { capturingLogger, fingerprintFrom, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the milliseconds until `socket` closed; rejects if it is still open after `ms`. */
function closedWithin(socket: Socket, ms: number): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the connection was still open after ${ms} ms`));
    }, ms);
    socket.on('error', () => {});
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

/** Everything a socket receives until it closes (or `ms` passes). */
function received(socket: Socket, ms: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return closedWithin(socket, ms).then(() => Buffer.concat(chunks));
}

/** Resolves once the TLS handshake completed; rejects on a refusal or after `ms`. */
function secured(socket: TLSSocket, ms = 3000): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no TLS handshake within ${ms} ms`));
    }, ms);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

const plainSocket = (port: number) =>
  new Promise<Socket>((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });

/**
 * Sends `request`, takes the first bytes of the answer, then reads nothing for `stallMs`; then
 * reads what is left until the connection closes. The bytes received in all.
 */
async function readAfterStalling(port: number, request: string, stallMs: number): Promise<number> {
  const stalled = await plainSocket(port);
  stalled.write(request);
  const [first] = (await once(stalled, 'data')) as [Buffer];
  stalled.pause();
  await sleep(stallMs);
  const rest = received(stalled, 30_000);
  stalled.resume();
  return first.length + (await rest).length;
}

let identity: Promise<{ cert: string; private: string }> | undefined;
const tlsIdentity = () => (identity ??= selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec' }));

/** A bare listener with a handler of the test's choosing: the connection rules alone. */
async function listener(t: { after(fn: () => Promise<void>): void }, options: ListenOptions, handler?: (req: IncomingMessage, res: ServerResponse) => void) {
  const id = await tlsIdentity();
  const l = await listenDual('127.0.0.1', 0, handler ?? ((_req, res) => res.end('ok')), { cert: id.cert, key: id.private }, options);
  t.after(() => l.close());
  return l;
}

test('connections that never finish a request header are closed', async (t) => {
  const { port } = await listener(t, { headersTimeoutMs: 800 });
  const bound = 4000;

  const silent = await plainSocket(port);
  const halfHeaders = await plainSocket(port);
  halfHeaders.write('GET / HTTP/1.1\r\nHost: localhost\r\n');
  const dribble = await plainSocket(port);
  const request = 'GET / HTTP/1.1\r\nHost: localhost\r\nX-Padding: ' + 'a'.repeat(200) + '\r\n\r\n';
  let sent = 0;
  const drip = setInterval(() => {
    if (!dribble.destroyed && sent < request.length) dribble.write(request[sent++]!);
  }, 100);
  t.after(() => clearInterval(drip));
  // One byte of a TLS handshake, then nothing.
  const handshake = await plainSocket(port);
  handshake.write(Buffer.from([0x16]));
  // A TLS record header announcing 64 KiB (more than any ClientHello), a few bytes of it, then nothing.
  const longRecord = await plainSocket(port);
  longRecord.write(Buffer.from([0x16, 3, 1, 0xff, 0xff, 1, 0, 0xff]));
  // A TLS session that never sends a request.
  const quietTls = await secured(tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }));

  const times = await Promise.all([silent, halfHeaders, dribble, handshake, longRecord, quietTls].map((s) => closedWithin(s, bound)));
  for (const ms of times) assert.ok(ms >= 300, `closed after ${ms} ms, not before the bound`);
});

test('an idle keep-alive connection is closed, a long download is not cut', async (t) => {
  const { port } = await listener(t, { headersTimeoutMs: 800, keepAliveTimeoutMs: 60_000 }, (req, res) => {
    if (req.url !== '/slow') return void res.end('ok');
    // A download that takes several header timeouts to complete.
    let n = 0;
    res.writeHead(200, { 'content-length': String(10 * 1000) });
    const tick = setInterval(() => {
      res.write(Buffer.alloc(1000, 0x61));
      if (++n === 10) {
        clearInterval(tick);
        res.end();
      }
    }, 250);
    res.on('close', () => clearInterval(tick));
  });

  const keepAlive = await plainSocket(port);
  const answer = new Promise<Buffer>((resolve) => keepAlive.once('data', resolve));
  keepAlive.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
  assert.match((await answer).toString(), /^HTTP\/1\.1 200/);
  const idle = await closedWithin(keepAlive, 4000);
  assert.ok(idle >= 300, `closed after ${idle} ms`);

  const download = await secured(tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }));
  download.write('GET /slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  const body = await received(download, 10_000);
  const text = body.toString();
  assert.match(text, /^HTTP\/1\.1 200/);
  assert.equal(text.length - text.indexOf('\r\n\r\n') - 4, 10_000, 'the whole body arrived');
});

test('a download whose client stops reading is cut after send_timeout; a client that reads slowly gets it all', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Stall', release: '1', architecture: 'amd64' } });
  // Larger than what the kernel buffers on both ends of a loopback connection.
  const root = await buildSquashfs(work, { seed: 'stall', padMiB: 40 });
  await wharfOk(data, ['image', 'import', meta.path, root.path]);
  const server = await serve(t, data, { http: true, sendTimeout: 2 });
  const request = `GET /files/${root.sha256}.squashfs HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`;

  // Takes the headers and a little, then nothing for longer than the timeout: the server gives
  // up on it, so what the client finds when it reads again is a short body and the end.
  const got = await readAfterStalling(server.httpPort!, request, 6_000);
  assert.ok(got < root.size, `cut short: ${got} bytes of a ${root.size}-byte file`);

  // Reads in bursts with pauses shorter than the timeout: never cut, every byte arrives.
  const slow = await plainSocket(server.httpPort!);
  slow.write(request);
  let bytes = 0;
  slow.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes % (8 * 1024 * 1024) < chunk.length) {
      slow.pause();
      setTimeout(() => slow.resume(), 700);
    }
  });
  await closedWithin(slow, 60_000);
  assert.ok(bytes > root.size, `the whole file arrived (${bytes} bytes with headers, file ${root.size})`);
});

test('a large rendered document (index, catalogue page) is sent under send_timeout too', async (t) => {
  const { app, handler } = baseApp(silentLogger, { sendTimeoutMs: 1500 });
  // Larger than what the kernel buffers on both ends of a loopback connection.
  const doc = renderBytes(Buffer.alloc(32 * 1024 * 1024, 0x20), 'application/json');
  app.route({ method: ['GET', 'HEAD'], url: '/big.json', handler: async (request, reply) => sendRendered(request, reply, doc) });
  await app.ready();
  t.after(() => app.close());
  const { port } = await listener(t, {}, handler());
  const request = 'GET /big.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';

  const got = await readAfterStalling(port, request, 4_000);
  assert.ok(got < doc.body.length, `cut short: ${got} bytes of a ${doc.body.length}-byte document`);

  const reader = await plainSocket(port);
  reader.write(request);
  const whole = await received(reader, 30_000);
  assert.equal(whole.length - whole.indexOf('\r\n\r\n') - 4, doc.body.length, 'a client that reads gets it all');
  const head = await plainSocket(port);
  head.write(request.replace('GET', 'HEAD'));
  assert.match((await received(head, 5_000)).toString(), new RegExp(`content-length: ${doc.body.length}\r\n[^]*\r\n\r\n$`, 'i'));
});

test('a request body that stops arriving is cut after the body timeout; one that arrives slowly is served', async (t) => {
  // An upload handler: reads the whole body, answers with its length.
  const { port } = await listener(t, { headersTimeoutMs: 60_000, bodyTimeoutMs: 800 }, (req, res) => {
    let length = 0;
    req.on('data', (c: Buffer) => (length += c.length));
    req.on('end', () => res.end(String(length)));
  });
  const bound = 4000;

  // Announces 10,000 bytes, sends 100, then nothing; the same over TLS, and in chunks.
  const stalled = await plainSocket(port);
  stalled.write('POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000\r\n\r\n' + 'a'.repeat(100));
  const stalledTls = await secured(tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }));
  stalledTls.write('POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000\r\n\r\n' + 'a'.repeat(100));
  const stalledChunks = await plainSocket(port);
  stalledChunks.write('POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n' + 'a'.repeat(100) + '\r\n');

  // 1,000 bytes, 100 every 300 ms: three times the timeout in all, never a pause as long as it.
  const slow = await plainSocket(port);
  slow.write('POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n');
  let sent = 0;
  const drip = setInterval(() => {
    if (slow.destroyed || sent === 1000) return clearInterval(drip);
    slow.write('b'.repeat(100));
    sent += 100;
  }, 300);
  t.after(() => clearInterval(drip));

  const [answer, ...times] = await Promise.all([received(slow, 10_000), ...[stalled, stalledTls, stalledChunks].map((s) => closedWithin(s, bound))]);
  for (const ms of times) assert.ok(ms >= 500, `closed after ${ms} ms, not before the timeout`);
  assert.match(answer.toString(), /^HTTP\/1\.1 200[^]*\r\n\r\n1000$/);
});

test('the body timeout reaches the server: a stalled request body to the API is cut', async (t) => {
  const data = await tempDir(t);
  const server = await serve(t, data, { bodyTimeout: 1 });
  // The trust endpoint reads a body from anyone.
  const socket = await secured(tlsConnect({ host: '127.0.0.1', port: server.httpsPort, rejectUnauthorized: false }));
  socket.write('POST /1.0/certificates HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"type":');
  const ms = await closedWithin(socket, 8000);
  assert.ok(ms >= 700, `closed after ${ms} ms`);
});

test('one address may hold only so many connections at once', async (t) => {
  const { port } = await listener(t, { headersTimeoutMs: 10_000, connections: new ConnectionBudget({ perAddress: 3, total: 0 }) });
  const held = await Promise.all([plainSocket(port), plainSocket(port), plainSocket(port)]);
  await sleep(100);
  const refused = await plainSocket(port);
  assert.ok((await closedWithin(refused, 2000)) < 1000, 'the fourth is closed at once');
  held[0]!.destroy();
  await sleep(100);
  const next = await plainSocket(port);
  next.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  assert.match((await received(next, 3000)).toString(), /^HTTP\/1\.1 200/);
  for (const s of held) s.destroy();
});

test('a listener holds only so many connections at once, whatever their addresses', async (t) => {
  const { port } = await listener(t, { headersTimeoutMs: 10_000, connections: new ConnectionBudget({ perAddress: 0, total: 3 }) });
  // From three addresses of the loopback network: the per-address bound does not apply.
  const from = (local: string) => connectFrom(port, local);
  const held = await Promise.all([from('127.0.0.2'), from('127.0.0.3'), from('127.0.0.4')]);
  await sleep(100);
  const refused = await from('127.0.0.5');
  assert.ok((await closedWithin(refused, 2000)) < 1000, 'the fourth is closed at once');
  held[0]!.destroy();
  await sleep(100);
  const next = await from('127.0.0.5');
  next.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  assert.match((await received(next, 3000)).toString(), /^HTTP\/1\.1 200/);
  for (const s of held) s.destroy();
});

test('the bounds hold for a process, not for each of its listeners', async (t) => {
  // As listenLimits gives them: one budget for the HTTPS port and the plain HTTP one.
  const connections = new ConnectionBudget({ perAddress: 2, total: 3 });
  const dual = await listener(t, { headersTimeoutMs: 10_000, connections });
  const plain = await listenPlain('127.0.0.1', 0, (_req, res) => res.end('ok'), { headersTimeoutMs: 10_000, connections });
  t.after(() => plain.close());
  const both = [await connectFrom(dual.port, '127.0.0.2'), await connectFrom(plain.port, '127.0.0.2')];
  await sleep(100);
  const third = await connectFrom(plain.port, '127.0.0.2');
  assert.ok((await closedWithin(third, 2000)) < 1000, 'a third from one address is closed at once, on either port');
  const other = await connectFrom(dual.port, '127.0.0.3');
  await sleep(100);
  const fourth = await connectFrom(plain.port, '127.0.0.4');
  assert.ok((await closedWithin(fourth, 2000)) < 1000, 'a fourth in all is closed at once');
  both[0]!.destroy();
  await sleep(100);
  const next = await connectFrom(plain.port, '127.0.0.4');
  next.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  assert.match((await received(next, 3000)).toString(), /^HTTP\/1\.1 200/, 'a place given back on one port serves on the other');
  for (const s of [...both, other]) s.destroy();
});

/** A TCP connection to `port` on 127.0.0.1 from another loopback address (`local`). */
function connectFrom(port: number, local: string): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port, localAddress: local }, () => resolve(s));
    s.once('error', reject);
  });
}

test('a TLS client offering only http/1.0 in ALPN is served', async (t) => {
  const { port } = await listener(t, {});
  const socket = await secured(tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.0'] }));
  assert.equal(socket.alpnProtocol, 'http/1.0');
  socket.write('GET / HTTP/1.0\r\nHost: localhost\r\n\r\n');
  assert.match((await received(socket, 3000)).toString(), /^HTTP\/1\.[01] 200[^]*\r\n\r\nok$/);
});

/** One raw request over TLS (or plain TCP) and the whole answer; the server closes after it. */
async function rawExchange(port: number, request: string, options: { tls?: boolean; cert?: string; key?: string } = {}): Promise<string> {
  const socket =
    options.tls === false
      ? await plainSocket(port)
      : await secured(tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(options.cert ? { cert: options.cert, key: options.key } : {}) }));
  socket.write(request);
  return (await received(socket, 5000)).toString('latin1');
}

const header = (answer: string, name: string) => new RegExp(`^${name}: (.*)$`, 'im').exec(answer.split('\r\n\r\n')[0]!)?.[1]?.trim();

test('the Host header is used only when it is a host name or address', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const image = await buildUnified(work, { properties: { os: 'Hosty', release: '1' }, seed: 'h' });
  await wharfOk(data, ['image', 'import', image.path, '--alias', 'hosty']);
  const server = await serve(t, data);
  const port = server.httpsPort;
  const self = `https://127.0.0.1:${port}/`;

  // HTTP/1.0 lets a request come without Host.
  const noHost = await rawExchange(port, 'HEAD /direct/hosty HTTP/1.0\r\n\r\n');
  assert.match(noHost, /^HTTP\/1\.1 200/);
  assert.ok(header(noHost, 'lxd-image-url')!.startsWith(self), header(noHost, 'lxd-image-url'));
  assert.equal(header(noHost, 'incus-image-url'), header(noHost, 'lxd-image-url'));

  for (const junk of ['evil.example/x?', 'a b', '"><script>', 'host:99999', 'user@host', '[not-v6]:1', 'a..b']) {
    const answer = await rawExchange(port, `HEAD /direct/hosty HTTP/1.1\r\nHost: ${junk}\r\nConnection: close\r\n\r\n`);
    assert.ok(header(answer, 'lxd-image-url')!.startsWith(self), `${junk}: ${header(answer, 'lxd-image-url')}`);
    const redirect = await rawExchange(port, `GET /1.0 HTTP/1.1\r\nHost: ${junk}\r\nConnection: close\r\n\r\n`, { tls: false });
    assert.match(redirect, /^HTTP\/1\.1 301/);
    assert.equal(header(redirect, 'location'), `${self}1.0`, junk);
  }

  const named = await rawExchange(port, 'HEAD /direct/hosty HTTP/1.1\r\nHost: images.example.org:8443\r\nConnection: close\r\n\r\n');
  assert.ok(header(named, 'lxd-image-url')!.startsWith('https://images.example.org:8443/'));
  const v6 = await rawExchange(port, 'GET /streams/v1/index.json HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n', { tls: false });
  assert.equal(header(v6, 'location'), `https://[::1]:${port}/streams/v1/index.json`);

  // A target in absolute form (as sent to a proxy) is its origin form, on the target's host.
  const absolute = await rawExchange(port, 'GET http://images.example.org/1.0 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n', { tls: false });
  assert.equal(header(absolute, 'location'), `https://images.example.org:${port}/1.0`);
  const absoluteTls = await rawExchange(port, `HEAD https://images.example.org:${port}/direct/hosty?x=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n`);
  assert.match(absoluteTls, /^HTTP\/1\.1 200/);
  assert.ok(header(absoluteTls, 'lxd-image-url')!.startsWith(`https://images.example.org:${port}/`), header(absoluteTls, 'lxd-image-url'));
  const absoluteJunk = await rawExchange(port, 'GET http://evil.example/x?/1.0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { tls: false });
  assert.match(header(absoluteJunk, 'location') ?? '', /^https:\/\/evil\.example:\d+\/x\?\/1\.0$/, 'a well-formed Location');
  // The asterisk form names no resource: nothing to redirect to.
  const asterisk = await rawExchange(port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { tls: false });
  assert.match(asterisk, /^HTTP\/1\.1 404/);
  assert.equal(header(asterisk, 'location'), undefined);

  assert.deepEqual(parseHost('Example.ORG'), { host: 'example.org', port: undefined });
  assert.deepEqual(parseHost('10.0.0.1:8443'), { host: '10.0.0.1', port: 8443 });
  assert.equal(parseHost('[::1%eth0]'), undefined);
  assert.equal(parseHost(''), undefined);
});

test('encoded names are decoded once', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const one = await buildUnified(work, { properties: { os: 'One', release: '1' }, seed: 'one', name: 'one.tar.gz' });
  const two = await buildUnified(work, { properties: { os: 'Two', release: '1' }, seed: 'two', name: 'two.tar.gz' });
  const fpOne = fingerprintFrom(await wharfOk(data, ['image', 'import', one.path, '--alias', '100%', '--alias', 'a%41b', '--alias', 'débian/ünï']));
  const fpTwo = fingerprintFrom(await wharfOk(data, ['image', 'import', two.path, '--alias', 'aAb']));
  const admin = await selfsigned.generate([{ name: 'commonName', value: 'admin' }], { keyType: 'ec' });
  await writeFile(join(work, 'admin.crt'), admin.cert);
  await wharfOk(data, ['trust', 'add', join(work, 'admin.crt')]);
  const server = await serve(t, data);
  const call = (method: string, path: string, body?: object) =>
    fetchRaw(server.base + path, {
      ca: server.tls.cert,
      method,
      cert: admin.cert,
      key: admin.private,
      ...(body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
    });
  const anonymous = (method: string, path: string) => fetchRaw(server.base + path, { ca: server.tls.cert, method });
  const enc = (name: string) => name.split('/').map(encodeURIComponent).join('/');
  const target = async (name: string) => {
    const r = await anonymous('GET', `/1.0/images/aliases/${enc(name)}`);
    return r.status === 200 ? (JSON.parse(r.body.toString()).metadata.target as string) : r.status;
  };

  assert.equal(await target('100%'), fpOne);
  assert.equal(await target('a%41b'), fpOne, 'not the alias "aAb"');
  assert.equal(await target('aAb'), fpTwo);
  assert.equal(await target('débian/ünï'), fpOne);
  for (const name of ['100%', 'a%41b', 'débian/ünï']) {
    const direct = await anonymous('HEAD', `/direct/${enc(name)}`);
    assert.equal(direct.status, 200, name);
    assert.equal(direct.headers['lxd-image-hash'], fpOne, name);
  }
  assert.equal((await anonymous('HEAD', `/direct/${enc('aAb')}`)).headers['lxd-image-hash'], fpTwo);

  const renamed = await call('POST', `/1.0/images/aliases/${enc('a%41b')}`, { name: 'b%42c' });
  assert.equal(renamed.status, 201);
  assert.equal(renamed.headers.location, `/1.0/images/aliases/${encodeURIComponent('b%42c')}`);
  assert.equal(await target('b%42c'), fpOne);
  assert.equal(await target('a%41b'), 404);
  assert.equal(await target('aAb'), fpTwo, 'the other alias is untouched');
  assert.equal((await call('DELETE', `/1.0/images/aliases/${enc('100%')}`)).status, 200);
  assert.equal(await target('100%'), 404);
  assert.equal((await call('DELETE', `/1.0/images/aliases/${enc('débian/ünï')}`)).status, 200);
  assert.equal(await target('débian/ünï'), 404);
  assert.equal(await target('b%42c'), fpOne);
});

/** A trusted admin and an untrusted stranger (client certificates) against a served data dir. */
async function withClients(t: Parameters<typeof tempDir>[0], work: string, data: string) {
  const admin = await selfsigned.generate([{ name: 'commonName', value: 'admin' }], { keyType: 'ec' });
  const stranger = await selfsigned.generate([{ name: 'commonName', value: 'stranger' }], { keyType: 'ec' });
  await writeFile(join(work, 'admin.crt'), admin.cert);
  await wharfOk(data, ['trust', 'add', join(work, 'admin.crt')]);
  const server = await serve(t, data);
  const call = (who: { cert: string; private: string }, method: string, path: string, body?: string) =>
    fetchRaw(server.base + path, {
      ca: server.tls.cert,
      method,
      cert: who.cert,
      key: who.private,
      ...(body !== undefined ? { body, headers: { 'content-type': 'application/json' } } : {}),
    });
  return { admin, stranger, server, call };
}

const json = (r: { body: Buffer }) => JSON.parse(r.body.toString());

test('operations are shown to untrusted callers only with their secret, and expire', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const image = await buildUnified(work, { properties: { os: 'Ops', release: '1' }, seed: 'ops' });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', image.path, '--private']));
  const { admin, stranger, server, call } = await withClients(t, work, data);

  const minted = json(await call(admin, 'POST', `/1.0/images/${fp}/secret`, '{}'));
  const id = minted.metadata.id as string;
  const secret = minted.metadata.metadata.secret as string;
  const wait = (who: typeof admin, query = '') => call(who, 'GET', `/1.0/operations/${id}/wait${query}`);

  const refused = await wait(stranger);
  assert.equal(refused.status, 403);
  assert.ok(!refused.body.toString().includes(secret));
  assert.equal((await wait(stranger, `?secret=${'0'.repeat(64)}`)).status, 403);
  assert.equal((await call(stranger, 'GET', `/1.0/operations/${id}`)).status, 404);
  assert.equal((await call(stranger, 'GET', `/1.0/operations/${'1'.repeat(8)}-0000-0000-0000-000000000000/wait?secret=x`)).status, 404);
  const own = await wait(stranger, `?secret=${secret}&timeout=30`);
  assert.equal(own.status, 200, 'the holder of the secret may wait on its operation, as with LXD');
  assert.equal(json(own).metadata.id, id);
  assert.equal(json(await wait(admin)).metadata.metadata.secret, secret);

  // A finished operation (an image deletion) is no more visible without trust.
  const deleted = json(await call(admin, 'DELETE', `/1.0/images/${fp}`));
  const finishedId = deleted.metadata.id as string;
  assert.equal((await call(stranger, 'GET', `/1.0/operations/${finishedId}/wait`)).status, 403);
  assert.equal((await call(admin, 'GET', `/1.0/operations/${finishedId}/wait`)).status, 200);

  // `lxc image copy --mode push`: the source daemon uploads untrusted with the push secret, then
  // waits on the upload's operation with the secret it finds in it.
  const pushed = await buildUnified(work, { properties: { os: 'Pushed', release: '1' }, seed: 'pushed', name: 'pushed.tar.gz' });
  const grant = json(await call(admin, 'POST', '/1.0/images', JSON.stringify({ source: { type: 'image', mode: 'push', fingerprint: pushed.sha256 } })));
  const pushSecret = grant.metadata.metadata.secret as string;
  const upload = await fetchRaw(`${server.base}/1.0/images`, {
    ca: server.tls.cert,
    method: 'POST',
    cert: stranger.cert,
    key: stranger.private,
    headers: { 'content-type': 'application/octet-stream', 'x-lxd-secret': pushSecret, 'x-lxd-fingerprint': pushed.sha256 },
    body: await readFile(pushed.path),
  });
  assert.equal(upload.status, 202, upload.body.toString());
  const uploadOp = json(upload).metadata;
  assert.equal(uploadOp.metadata.secret, pushSecret);
  assert.equal((await call(stranger, 'GET', `/1.0/operations/${uploadOp.id}/wait?secret=${pushSecret}&timeout=-1`)).status, 200);
  assert.equal((await call(stranger, 'GET', `/1.0/operations/${uploadOp.id}/wait`)).status, 403);

  const grants = new SqliteGrantStore(join(work, 'grants-test.db'));
  t.after(() => grants.close());
  const kept = new Operations(grants, 100);
  const op = (secretValue?: string) =>
    operation({ class: 'task', description: 'x', status: 'Success', status_code: 200, resources: null, metadata: secretValue ? { secret: secretValue } : null });
  const finished = op();
  const token = op('s');
  await kept.add(finished);
  await kept.add(token, Date.now() + 1000);
  assert.equal(await kept.size(), 2);
  await sleep(250);
  assert.equal(await kept.get(finished.id), undefined, 'finished operations expire');
  assert.deepEqual(await kept.get(token.id), token, 'a token lives as long as its secret');
  assert.equal(await kept.size(), 1);
});

test('a one-time secret: one download at a time, spent only by a complete one, never by HEAD', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Big', release: '1' } });
  const rootfs = await buildSquashfs(work, { seed: 'big', padMiB: 32 });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, rootfs.path, '--private']));
  const { admin, stranger, server, call } = await withClients(t, work, data);
  const secret = json(await call(admin, 'POST', `/1.0/images/${fp}/secret`, '{}')).metadata.metadata.secret as string;
  const exportPath = `/1.0/images/${fp}/export?secret=${secret}`;

  const head = await call(stranger, 'HEAD', exportPath);
  assert.equal(head.status, 200);
  assert.ok(Number(head.headers['content-length']) > 32 * 1024 * 1024, JSON.stringify(head.headers));
  assert.equal((await call(stranger, 'GET', `/1.0/images/${fp}?secret=${secret}`)).status, 200);

  // A download in progress (its reader stalls) holds the secret.
  const slow = await secured(tlsConnect({ host: '127.0.0.1', port: server.httpsPort, rejectUnauthorized: false, cert: stranger.cert, key: stranger.private }));
  slow.on('error', () => {});
  const started = new Promise((r) => slow.once('data', r));
  slow.write(`GET ${exportPath} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  await started;
  slow.pause();
  const second = await call(stranger, 'GET', exportPath);
  assert.equal(second.status, 409);
  assert.ok(!second.body.toString().includes(secret));

  // Cut off: the secret is free again, for one complete download.
  slow.destroy();
  // The server learns of the hang-up when its next write fails: on a busy machine, not at once.
  let whole = await call(stranger, 'GET', exportPath);
  for (let i = 0; whole.status === 409 && i < 50; i++) {
    await sleep(100);
    whole = await call(stranger, 'GET', exportPath);
  }
  assert.equal(whole.status, 200);
  assert.equal(whole.body.length, Number(head.headers['content-length']));
  assert.equal((await call(stranger, 'GET', exportPath)).status, 404, 'spent');
  assert.equal((await call(stranger, 'HEAD', exportPath)).status, 404);
});

test('a secret never appears in the errors of a pull from another server', async (t) => {
  const junk = createServer((_req, res) => res.end('<html>not the LXD API</html>'));
  junk.listen(0, '127.0.0.1');
  await once(junk, 'listening');
  t.after(() => new Promise<void>((r) => junk.close(() => r())));
  const server = `http://127.0.0.1:${(junk.address() as { port: number }).port}`;
  const secret = 'f00dfeedcafe'.repeat(5);
  await assert.rejects(openLxdImage({ server, fingerprint: 'ab'.repeat(32), secret }, { limit: 1 << 20 }), (err: Error) => {
    assert.match(err.message, /not an LXD API answer/);
    assert.ok(!err.message.includes(secret), err.message);
    return true;
  });
  assert.equal(withoutSecrets(`/1.0/images/x/export?project=default&secret=${secret}&b=1`), '/1.0/images/x/export?project=default&secret=REDACTED&b=1');
});

test('a split upload cut off mid-way is abandoned at once and leaves nothing', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const admin = await selfsigned.generate([{ name: 'commonName', value: 'admin' }], { keyType: 'ec' });
  await writeFile(join(work, 'admin.crt'), admin.cert);
  await wharfOk(data, ['trust', 'add', join(work, 'admin.crt')]);
  const meta = await readFile((await buildMetadataTarball(work, { properties: { os: 'Cut', release: '1' } })).path);
  const rootfs = await readFile((await buildSquashfs(work, { seed: 'cut', padMiB: 4 })).path);
  // Not serve(): this test closes the server itself, and must see that close complete.
  const config = await loadConfig(data, { https: '127.0.0.1:0' }, {});
  const server = await startServer(config, silentLogger);
  let closed = false;
  t.after(async () => {
    if (!closed) await server.close();
  });

  const boundary = 'cutcutcut';
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="metadata"; filename="meta.tar.xz"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const middle = Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="rootfs"; filename="rootfs.squashfs"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const length = head.length + meta.length + middle.length + rootfs.length + tail.length;
  const socket = await secured(tlsConnect({ host: '127.0.0.1', port: server.httpsPort, rejectUnauthorized: false, cert: admin.cert, key: admin.private }));
  socket.on('error', () => {});
  socket.write(
    `POST /1.0/images HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${length}\r\n\r\n`,
  );
  socket.write(Buffer.concat([head, meta, middle, rootfs.subarray(0, rootfs.length >> 1)]));
  const staging = join(data, 'blobs', 'staging');
  const deadline = Date.now() + 5000;
  while ((await readdir(staging)).length === 0 && Date.now() < deadline) await sleep(50);
  assert.notEqual((await readdir(staging)).length, 0, 'the import was under way');
  socket.destroy();

  while ((await readdir(staging)).length > 0 && Date.now() < deadline + 5000) await sleep(50);
  assert.deepEqual(await readdir(staging), [], 'no staging file is left');
  const closing = server.close().then(() => 'closed');
  closed = true;
  assert.equal(await Promise.race([closing, sleep(5000).then(() => 'still closing')]), 'closed');
});

test('a download cut after its headers: a short body, and one log line that says why (or that the client left)', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Cut', release: '2' } });
  const sq = await buildSquashfs(work, { seed: 'cut-download', padMiB: 16 });
  await wharfOk(data, ['image', 'import', meta.path, sq.path]);
  const { log, records } = capturingLogger();
  const server = await serve(t, data, { processes: 1, log });
  const path = `/files/${sq.sha256}.squashfs`;
  const linesAbout = (id: string) => records.filter((r) => JSON.stringify(r).includes(id));
  const requestId = (head: Buffer) => /\r\nx-request-id: ([0-9a-f]+)\r\n/i.exec(head.toString('latin1'))?.[1] ?? '';
  const settled = async (id: string) => {
    for (const started = Date.now(); !records.some((r) => r.msg === 'request' && r.id === id); await sleep(20)) {
      assert.ok(Date.now() - started < 5000, `no access-log line for ${id}`);
    }
    await sleep(100); // and nothing more comes
    return linesAbout(id);
  };
  const open = async (range?: string, connection = 'close') => {
    const socket = await secured(tlsConnect({ host: '127.0.0.1', port: server.httpsPort, ca: server.tls.cert, servername: 'localhost' }));
    socket.on('error', () => {});
    socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: ${connection}\r\n${range ? `Range: ${range}\r\n` : ''}\r\n`);
    const [head] = (await once(socket, 'data')) as [Buffer];
    socket.pause();
    return { socket, head };
  };

  // The client goes away mid-body: no failure of the server's, one info line marked incomplete.
  const left = await open();
  left.socket.destroy();
  const leftLines = await settled(requestId(left.head));
  assert.equal(leftLines.length, 1, JSON.stringify(leftLines));
  assert.equal(leftLines[0]!.level, 'info');
  assert.equal(leftLines[0]!.status, 200);
  assert.equal(leftLines[0]!.incomplete, true);

  // The stored file is shorter than its record: the headers promised more than can be sent.
  const blob = join(data, 'blobs', 'sha256', sq.sha256.slice(0, 2), sq.sha256);
  await truncate(blob, sq.size >> 1);
  const cut = await open(`bytes=0-${sq.size - 1}`);
  assert.match(cut.head.toString('latin1'), /^HTTP\/1\.1 206/);
  const receiving = received(cut.socket, 10_000);
  cut.socket.resume();
  const rest = await receiving;
  const body = Buffer.concat([cut.head, rest]);
  const sent = body.length - body.indexOf('\r\n\r\n') - 4;
  assert.ok(sent < sq.size, `a short body (${sent} of ${sq.size} bytes), never a padded one`);
  const cutLines = await settled(requestId(cut.head));
  assert.equal(cutLines.length, 1, `logged once: ${JSON.stringify(cutLines)}`);
  const line = cutLines[0]!;
  assert.equal(line.level, 'error');
  assert.equal(line.status, 206);
  assert.equal(line.incomplete, true);
  assert.match(JSON.stringify(line.err), /shorter than its record/);

  // Without a Range too, on a keep-alive connection: it is cut at once, the client is not left
  // waiting for the bytes its Content-Length promised.
  const whole = await open(undefined, 'keep-alive');
  assert.match(whole.head.toString('latin1'), /^HTTP\/1\.1 200/);
  const wholeRest = received(whole.socket, 5_000);
  whole.socket.resume();
  const wholeBody = Buffer.concat([whole.head, await wholeRest]);
  assert.ok(wholeBody.length - wholeBody.indexOf('\r\n\r\n') - 4 < sq.size, 'a short body, then the connection closed');
});
