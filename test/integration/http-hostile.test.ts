/** Hostile and odd HTTP clients, driven over raw sockets on loopback: every wait is bounded. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { IncomingMessage, ServerResponse } from 'node:http';
import selfsigned from 'selfsigned';
import { listenDual, type ListenOptions } from '../../src/http/listen.ts';

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
  // A TLS session that never sends a request.
  const quietTls = await secured(tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }));

  const times = await Promise.all([silent, halfHeaders, dribble, handshake, quietTls].map((s) => closedWithin(s, bound)));
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

test('one address may hold only so many connections at once', async (t) => {
  const { port } = await listener(t, { headersTimeoutMs: 10_000, maxConnectionsPerAddress: 3 });
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

test('a TLS client offering only http/1.0 in ALPN is served', async (t) => {
  const { port } = await listener(t, {});
  const socket = await secured(tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.0'] }));
  assert.equal(socket.alpnProtocol, 'http/1.0');
  socket.write('GET / HTTP/1.0\r\nHost: localhost\r\n\r\n');
  assert.match((await received(socket, 3000)).toString(), /^HTTP\/1\.[01] 200[^]*\r\n\r\nok$/);
});
