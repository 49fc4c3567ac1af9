/**
 * Telling browsers from other TLS clients by their first record (src/http/client-hello.ts), on
 * ClientHellos that real clients send: Node's (OpenSSL) and curl's offer no GREASE; the same
 * hello with a GREASE suite where Chromium puts one does. Chromium's own hello is checked end to
 * end in test/browser/catalogue.test.ts. Nothing malformed makes it throw or read past the record.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { spawn } from 'node:child_process';
import fc from 'fast-check';
import { firstRecordSize, offersGrease } from '../../src/http/client-hello.ts';

/** The first bytes a client sends to a TCP server on loopback, up to its first whole record. */
async function firstRecordOf(startClient: (port: number) => () => void): Promise<Buffer> {
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
      setTimeout(() => reject(new Error('no ClientHello within 10 s')), 10_000).unref();
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

test('a ClientHello without GREASE (OpenSSL, as in Node) is no browser; with a GREASE suite first, as Chromium sends it, it is', async () => {
  const hello = await nodeHello();
  assert.equal(hello[0], 0x16, 'a TLS handshake record');
  assert.equal(offersGrease(hello), false);
  for (const grease of [0x0a0a, 0x1a1a, 0x7a7a, 0xfafa]) {
    const greased = Buffer.from(hello);
    greased.writeUInt16BE(grease, firstSuiteAt(hello));
    assert.equal(offersGrease(greased), true, grease.toString(16));
  }
  // Values of the GREASE shape with unequal bytes are no GREASE.
  const near = Buffer.from(hello);
  near.writeUInt16BE(0x1a2a, firstSuiteAt(hello));
  assert.equal(offersGrease(near), false);
  // A GREASE value outside the cipher suites (here in the random) does not count.
  const inRandom = Buffer.from(hello);
  inRandom.writeUInt16BE(0x2a2a, 5 + 6);
  assert.equal(offersGrease(inRandom), offersGrease(hello));
});

test("curl's ClientHello offers no GREASE", async (t) => {
  const hello = await firstRecordOf((port) => {
    const curl = spawn('curl', ['-sk', '--max-time', '5', `https://127.0.0.1:${port}/`], { stdio: 'ignore' });
    curl.on('error', () => {});
    return () => curl.kill();
  }).catch((e: Error) => (t.diagnostic(e.message), undefined));
  assert.ok(hello, 'curl connected (curl is installed by scripts/test.sh)');
  assert.equal(offersGrease(hello), false);
});

test('truncated, oversized or random records never throw and are no browser', async () => {
  const hello = await nodeHello();
  const greased = Buffer.from(hello);
  greased.writeUInt16BE(0x3a3a, firstSuiteAt(hello));
  // Cut anywhere before the GREASE suite: not enough to say, so no.
  for (let cut = 0; cut < firstSuiteAt(hello) + 2; cut++) assert.equal(offersGrease(greased.subarray(0, cut)), false, `cut at ${cut}`);
  // A record length shorter than the suites: only the record counts.
  const short = Buffer.from(greased);
  short.writeUInt16BE(firstSuiteAt(hello) - 5, 3);
  assert.equal(offersGrease(short), false);
  // Lengths no ClientHello has are capped: a caller never waits for 64 KiB.
  assert.equal(firstRecordSize(Buffer.from([0x16, 3, 1, 0xff, 0xff])), 5 + 16384);
  assert.equal(firstRecordSize(Buffer.from([0x16, 3, 1])), undefined);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(600), (bytes, at) => {
      const record = Buffer.from(bytes);
      if (record.length > 0 && at % 2 === 0) record[0] = 0x16;
      const answer = offersGrease(record);
      assert.equal(typeof answer, 'boolean');
    }),
    { numRuns: 2000 },
  );
});
