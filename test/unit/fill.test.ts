/**
 * One cache fill read by many readers: whatever the shape of the upstream's chunks and wherever
 * a reader starts (at the fill's head, where the newest bytes are shared from memory, or far
 * behind it, where they come from the staging copy), every reader gets exactly the origin's
 * bytes, and never the last byte of a file that does not verify.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { MemoryBlobStore } from '../../src/blob/memory.ts';
import { Fill } from '../../src/cache/fill.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Serves `body` in chunks of the given sizes (cycled), each after a turn of the event loop. */
async function chunkedOrigin(body: Buffer, sizes: number[]): Promise<{ url: URL; close: () => Promise<void> }> {
  const server: Server = createServer(async (_req, res) => {
    res.writeHead(200, { 'content-length': body.length });
    for (let at = 0, i = 0; at < body.length; i++) {
      const size = sizes[i % sizes.length]!;
      res.write(body.subarray(at, at + size));
      at += size;
      await new Promise((resolve) => setImmediate(resolve));
    }
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: new URL(`http://127.0.0.1:${port}/file`), close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Reads the file through the fill from `start`, `maxLength` at most at a time, then from the store. */
async function readAll(fill: Fill, blobs: MemoryBlobStore, start: number, maxLength: number, size: number, atLeast = 1): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for (let position = start; position < size; ) {
    const piece = await fill.read(position, maxLength, atLeast);
    if (piece === 'stored') {
      for await (const chunk of await blobs.openRead(fill.sha256, { start: position, end: size - 1 })) parts.push(chunk as Buffer);
      break;
    }
    assert.ok(piece.byteLength > 0 && piece.byteLength <= maxLength, `a piece of ${piece.byteLength} bytes for at most ${maxLength}`);
    parts.push(Buffer.from(piece));
    position += piece.byteLength;
  }
  return Buffer.concat(parts);
}

test('every reader of a fill gets exactly the origin bytes, wherever it starts and however the origin chunks them', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 3 * 1024 * 1024 }),
      fc.array(fc.integer({ min: 1, max: 300 * 1024 }), { minLength: 1, maxLength: 5 }),
      fc.array(
        fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 4096, max: 600 * 1024 }), fc.integer({ min: 0, max: 30 }), fc.integer({ min: 1, max: 300 * 1024 })),
        { minLength: 1, maxLength: 6 },
      ),
      async (size, sizes, readers) => {
        const body = randomBytes(size);
        const origin = await chunkedOrigin(body, sizes);
        try {
          const blobs = new MemoryBlobStore();
          const fill = new Fill(blobs, origin.url, { sha256: sha256(body), size }, {});
          const results = await Promise.all(
            readers.map(async ([where, maxLength, delayTurns, atLeast]) => {
              // Late readers start behind the fill's head by a random distance.
              for (let i = 0; i < delayTurns; i++) await new Promise((resolve) => setImmediate(resolve));
              const start = Math.min(size - 1, Math.floor(where * size));
              return { start, bytes: await readAll(fill, blobs, start, maxLength, size, atLeast) };
            }),
          );
          await fill.finished;
          assert.equal(fill.error, undefined);
          for (const { start, bytes } of results) assert.ok(bytes.equals(body.subarray(start)), `reader from ${start} got other bytes`);
        } finally {
          await origin.close();
        }
      },
    ),
    { numRuns: 25 },
  );
});

test('a fill whose bytes do not match cuts every reader off before the last byte, wherever it reads from', async () => {
  const size = 2 * 1024 * 1024 + 123;
  const body = randomBytes(size);
  const origin = await chunkedOrigin(body, [65_536, 1_000]);
  try {
    const blobs = new MemoryBlobStore();
    const fill = new Fill(blobs, origin.url, { sha256: sha256(Buffer.from('something else')), size }, {});
    const outcomes = await Promise.allSettled([0, size / 2, size - 10].map((start) => readAll(fill, blobs, Math.floor(start), 100_000, size)));
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      assert.match(String((outcome as PromiseRejectedResult).reason), /Hash mismatch/);
    }
    await fill.finished;
    assert.match(String(fill.error), /Hash mismatch/);
    assert.equal(await blobs.size(sha256(body)), undefined, 'nothing is kept');
  } finally {
    await origin.close();
  }
});
