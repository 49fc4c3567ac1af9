/** Fetch-through of lazily mirrored files, on the memory drivers and a file:// upstream. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { MemoryBlobStore } from '../../src/blob/memory.ts';
import { MemoryMetaStore } from '../../src/meta/memory.ts';
import { MemoryGrantStore } from '../../src/meta/grants-memory.ts';
import { hostname } from 'node:os';
import { FetchThroughBlobs } from '../../src/mirror/lazy.ts';
import { silentLogger } from '../../src/log.ts';
import type { BlobStore } from '../../src/blob/store.ts';
import { tempDir } from '../helpers/env.ts';
import { sha, splitImage } from '../conformance/meta-drivers.ts';

test('a copy dropped between its fetch and its open is fetched again, and the request is served', async (t) => {
  const bytes = randomBytes(300_000);
  const digest = createHash('sha256').update(bytes).digest('hex');
  const upstream = join(await tempDir(t), 'rootfs.squashfs');
  await writeFile(upstream, bytes);
  const meta = new MemoryMetaStore();
  const image = splitImage(sha('a', 1), { rootfs: { sha256: digest, size: bytes.length, format: { kind: 'squashfs' } } });
  await meta.insertImage(image, [], { [digest]: { url: pathToFileURL(upstream).href, certificate: '' } });

  // The scheduler's drop of an idle copy, landing right after the first fetch committed it.
  const inner = new MemoryBlobStore();
  let writers = 0;
  let dropped = false;
  const racing: BlobStore = Object.assign(Object.create(inner) as BlobStore, {
    createWriter: () => {
      writers++;
      return inner.createWriter();
    },
    openCopy: async (sha256: string, range?: Parameters<BlobStore['openCopy']>[1]) => {
      if (!dropped && (await inner.size(sha256)) !== undefined) {
        dropped = true;
        await inner.delete(sha256);
      }
      return inner.openCopy(sha256, range);
    },
  });
  const blobs = new FetchThroughBlobs(racing, meta, silentLogger);
  const out = new PassThrough();
  const received: Buffer[] = [];
  out.on('data', (c: Buffer) => received.push(c));
  await (await blobs.openCopy(digest)).copyTo(out);
  assert.ok(Buffer.concat(received).equals(bytes), 'the whole file is served');
  assert.equal(dropped, true, 'the copy was dropped in between');
  assert.equal(writers, 2, 'fetched again after the drop');
});

test('a fetch lease whose holder died is taken over once it expires, even when the dead holder had our process id', async (t) => {
  const bytes = randomBytes(100_000);
  const digest = createHash('sha256').update(bytes).digest('hex');
  const upstream = join(await tempDir(t), 'rootfs.squashfs');
  await writeFile(upstream, bytes);
  const meta = new MemoryMetaStore();
  const image = splitImage(sha('a', 2), { rootfs: { sha256: digest, size: bytes.length, format: { kind: 'squashfs' } } });
  await meta.insertImage(image, [], { [digest]: { url: pathToFileURL(upstream).href, certificate: '' } });
  const grants = new MemoryGrantStore();
  // A server that crashed mid-fetch: same host, same pid (a container restarted as pid 1), another start.
  assert.ok(await grants.takeLease(`fetch:${digest}`, `${hostname()}/${process.pid}/dead00000000`, 500));
  const blobs = new FetchThroughBlobs(new MemoryBlobStore(), meta, silentLogger, grants);
  const started = Date.now();
  const out = new PassThrough();
  const received: Buffer[] = [];
  out.on('data', (c: Buffer) => received.push(c));
  await (await blobs.openCopy(digest)).copyTo(out);
  assert.ok(Buffer.concat(received).equals(bytes));
  const waited = Date.now() - started;
  assert.ok(waited >= 400 && waited < 5_000, `waited ${waited} ms for the dead holder's lease to expire`);
});
