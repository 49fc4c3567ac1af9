/**
 * Telling browsers from other TLS clients by their first record (src/http/client-hello.ts), on
 * ClientHellos that real clients send: Firefox's (firefox-esr, headless) is a browser's; those of
 * the real lxc and incus clients (Go), Node (OpenSSL) and curl are not; Node's hello with a GREASE
 * suite where Chromium puts one, or with the delegated_credentials extension Firefox adds, is.
 * Chromium's own hello is checked end to end in test/browser/catalogue.test.ts. Nothing malformed
 * makes it throw or read past the record.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { spawn } from 'node:child_process';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstRecordSize, fromBrowser } from '../../src/http/client-hello.ts';

/** The first bytes a client sends to a TCP server on loopback, up to its first whole record. */
async function firstRecordOf(startClient: (port: number) => () => void, withinMs = 10_000): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let stop = () => {};
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      server.on('connection', (socket) => {
        let head = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => {
          head = Buffer.concat([head, chunk]);
          const size = firstRecordSize(head);
          if (size !== undefined && head.length >= size) {
            resolve(head.subarray(0, size));
            socket.destroy();
          }
        });
      });
      stop = startClient((server.address() as AddressInfo).port);
      setTimeout(() => reject(new Error(`no ClientHello within ${withinMs / 1000} s`)), withinMs).unref();
    });
  } finally {
    stop();
    server.close();
  }
}

const nodeHello = () =>
  firstRecordOf((port) => {
    const socket = connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'], servername: 'images.example.org' });
    socket.on('error', () => {});
    return () => socket.destroy();
  });

/** Offset of the first cipher suite: record header, handshake header, version, random, session id. */
const firstSuiteAt = (hello: Buffer) => 5 + 38 + 1 + hello[5 + 38]! + 2;

/** The first record of a program run with `args(port, dir)`, its home or config in `dir`, a fresh directory. */
async function helloOfProgram(command: string, args: (port: number, dir: string) => string[], env: (dir: string) => NodeJS.ProcessEnv, withinMs = 10_000): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-hello-'));
  try {
    return await firstRecordOf((port) => {
      const child = spawn(command, args(port, dir), { stdio: 'ignore', env: { ...process.env, ...env(dir) } });
      child.on('error', () => {});
      return () => child.kill('SIGKILL');
    }, withinMs);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Offset of the extensions' length: after the suites and the compression methods. */
function extensionsAt(hello: Buffer): number {
  const suites = firstSuiteAt(hello);
  const compression = suites + hello.readUInt16BE(suites - 2);
  return compression + 1 + hello[compression]!;
}

/** `hello` with one more extension (empty) at the end of its list, every length mended. */
function withExtension(hello: Buffer, type: number): Buffer {
  const extension = Buffer.alloc(4);
  extension.writeUInt16BE(type, 0);
  const out = Buffer.concat([hello, extension]);
  out.writeUInt16BE(out.readUInt16BE(3) + 4, 3);
  out.writeUIntBE(out.readUIntBE(6, 3) + 4, 6, 3);
  const at = extensionsAt(out);
  out.writeUInt16BE(out.readUInt16BE(at) + 4, at);
  return out;
}

test("Firefox's ClientHello is a browser's", async () => {
  // Firefox offers no GREASE suites; delegated_credentials is what tells it apart.
  const hello = await helloOfProgram('firefox-esr', (port, dir) => ['--headless', '--screenshot', join(dir, 'page.png'), `https://127.0.0.1:${port}/`], (dir) => ({ HOME: dir }), 60_000);
  assert.equal(fromBrowser(hello), true);
  const suites = [];
  for (let at = firstSuiteAt(hello); at < firstSuiteAt(hello) + hello.readUInt16BE(firstSuiteAt(hello) - 2); at += 2) suites.push(hello.readUInt16BE(at));
  assert.ok(!suites.some((v) => (v & 0x0f0f) === 0x0a0a), 'no GREASE suite: the extension decided');
});

test('the real lxc and incus clients (Go) are no browser', async () => {
  const lxc = await helloOfProgram('lxc', (port) => ['remote', 'add', 'probe', `https://127.0.0.1:${port}`, '--accept-certificate', '--public'], (dir) => ({ LXD_CONF: dir }));
  assert.equal(fromBrowser(lxc), false);
  const incus = await helloOfProgram('incus', (port) => ['remote', 'add', 'probe', `https://127.0.0.1:${port}`, '--accept-certificate', '--public'], (dir) => ({ INCUS_CONF: dir }));
  assert.equal(fromBrowser(incus), false);
});

test('a ClientHello with the delegated_credentials extension is a browser, anywhere in its list', async () => {
  const hello = await nodeHello();
  assert.equal(fromBrowser(withExtension(hello, 0x0023)), false, 'another extension added: still no browser');
  const firefoxLike = withExtension(hello, 0x0022);
  assert.equal(fromBrowser(firefoxLike), true);
  // Cut before the extension's type is whole: not enough to say, so no.
  for (let cut = extensionsAt(firefoxLike); cut < firefoxLike.length - 2; cut++) assert.equal(fromBrowser(firefoxLike.subarray(0, cut)), false, `cut at ${cut}`);
  // An extensions length that stops short of it: only the list counts.
  const short = Buffer.from(firefoxLike);
  short.writeUInt16BE(short.readUInt16BE(extensionsAt(short)) - 4, extensionsAt(short));
  assert.equal(fromBrowser(short), false);
});

test('a ClientHello without GREASE (OpenSSL, as in Node) is no browser; with a GREASE suite first, as Chromium sends it, it is', async () => {
  const hello = await nodeHello();
  assert.equal(hello[0], 0x16, 'a TLS handshake record');
  assert.equal(fromBrowser(hello), false);
  for (const grease of [0x0a0a, 0x1a1a, 0x7a7a, 0xfafa]) {
    const greased = Buffer.from(hello);
    greased.writeUInt16BE(grease, firstSuiteAt(hello));
    assert.equal(fromBrowser(greased), true, grease.toString(16));
  }
  // Values of the GREASE shape with unequal bytes are no GREASE.
  const near = Buffer.from(hello);
  near.writeUInt16BE(0x1a2a, firstSuiteAt(hello));
  assert.equal(fromBrowser(near), false);
  // A GREASE value outside the cipher suites (here in the random) does not count.
  const inRandom = Buffer.from(hello);
  inRandom.writeUInt16BE(0x2a2a, 5 + 6);
  assert.equal(fromBrowser(inRandom), fromBrowser(hello));
});

test("curl's ClientHello is no browser's", async (t) => {
  const hello = await helloOfProgram('curl', (port) => ['-sk', '--max-time', '5', `https://127.0.0.1:${port}/`], () => ({})).catch((e: Error) => (t.diagnostic(e.message), undefined));
  assert.ok(hello, 'curl connected (curl is installed by scripts/test.sh)');
  assert.equal(fromBrowser(hello), false);
});

test('truncated, oversized or random records never throw and are no browser', async () => {
  const hello = await nodeHello();
  const greased = Buffer.from(hello);
  greased.writeUInt16BE(0x3a3a, firstSuiteAt(hello));
  // Cut anywhere before the GREASE suite: not enough to say, so no.
  for (let cut = 0; cut < firstSuiteAt(hello) + 2; cut++) assert.equal(fromBrowser(greased.subarray(0, cut)), false, `cut at ${cut}`);
  // A record length shorter than the suites: only the record counts.
  const short = Buffer.from(greased);
  short.writeUInt16BE(firstSuiteAt(hello) - 5, 3);
  assert.equal(fromBrowser(short), false);
  // Lengths no ClientHello has are capped: a caller never waits for 64 KiB.
  assert.equal(firstRecordSize(Buffer.from([0x16, 3, 1, 0xff, 0xff])), 5 + 16384);
  assert.equal(firstRecordSize(Buffer.from([0x16, 3, 1])), undefined);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(600), (bytes, at) => {
      const record = Buffer.from(bytes);
      if (record.length > 0 && at % 2 === 0) record[0] = 0x16;
      const answer = fromBrowser(record);
      assert.equal(typeof answer, 'boolean');
    }),
    { numRuns: 2000 },
  );
});
