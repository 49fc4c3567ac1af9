/**
 * The BlobStore contract, run against every driver: what import, serving and collection rely on.
 * Drivers are listed in `drivers`; a new one (S3) joins the list and must pass unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { PassThrough } from 'node:stream';
import { text } from 'node:stream/consumers';
import { FsBlobStore } from '../../src/blob/fs.ts';
import { MemoryBlobStore } from '../../src/blob/memory.ts';
import { partSize as s3PartSize, S3BlobDriver } from '../../src/blob/s3.ts';
import { s3Location } from '../../src/blob/s3-location.ts';
import { useS3 } from '../helpers/s3.ts';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { Blobs, type BlobStore } from '../../src/blob/store.ts';
import { isAppError } from '../../src/errors.ts';
import { tempDir } from '../helpers/env.ts';
import { flipped } from '../fixtures/hostile.ts';

type Context = Parameters<typeof tempDir>[0];

/** `peer()`: another store over the same storage, as another process (or host) would have. */
const drivers: { name: string; open(t: Context): Promise<{ store: BlobStore; peer(): Promise<BlobStore> }> }[] = [
  {
    name: 'filesystem',
    async open(t) {
      const root = await tempDir(t);
      const opened = async () => {
        const store = new FsBlobStore(root);
        await store.init();
        return store;
      };
      return { store: await opened(), peer: opened };
    },
  },
  {
    name: 'memory',
    async open() {
      const store = new MemoryBlobStore();
      return { store, peer: async () => store.share() };
    },
  },
  {
    name: 's3',
    async open(t) {
      const location = s3Location(await useS3())!;
      const opened = async () => {
        const driver = new S3BlobDriver(location, { pathStyle: true });
        await driver.init();
        const store = new Blobs(driver);
        t.after(() => store.close());
        return store;
      };
      return { store: await opened(), peer: opened };
    },
  },
];

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function collect(store: BlobStore): Promise<string[]> {
  const out: string[] = [];
  for await (const blob of store.list()) out.push(blob.sha256);
  return out.sort();
}

for (const driver of drivers) {
  test(`${driver.name}: a committed blob is named by its sha256 and reads back whole or by range`, async (t) => {
    const { store } = await driver.open(t);
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const writer = await store.createWriter();
    for (let at = 0; at < bytes.length; at += 1 << 20) await writer.write(bytes.subarray(at, at + (1 << 20)));
    assert.equal(writer.size, bytes.length);
    assert.equal(await writer.digest(), sha256(bytes));
    const info = await writer.commit(sha256(bytes));
    assert.deepEqual(info, { sha256: sha256(bytes), size: bytes.length });
    assert.equal(await store.size(info.sha256), bytes.length);
    const whole = Buffer.concat(await (await store.openRead(info.sha256)).toArray());
    assert.ok(whole.equals(bytes));
    const part = Buffer.concat(await (await store.openRead(info.sha256, { start: 5, end: 1_500_000 })).toArray());
    assert.ok(part.equals(bytes.subarray(5, 1_500_001)));
    const out = new PassThrough();
    const copied = text(out);
    const opened = await store.openCopy(info.sha256, { start: 10, end: 19 });
    await opened.copyTo(out);
    out.end();
    assert.equal(await copied, bytes.subarray(10, 20).toString());
    assert.deepEqual(await collect(store), [info.sha256]);
  });

  test(`${driver.name}: a blob lent as a local file holds its bytes, for the call only; a missing one is not_found`, async (t) => {
    const { store } = await driver.open(t);
    const bytes = randomBytes(2 * 1024 * 1024 + 3);
    const writer = await store.createWriter();
    await writer.write(bytes);
    const { sha256: sha } = await writer.commit();
    let lent = '';
    const read = await store.withLocalFile(sha, async (path) => {
      lent = path;
      return readFile(path);
    });
    assert.ok(read.equals(bytes));
    assert.equal(await store.size(sha), bytes.length, 'lending takes nothing from the store');
    // A spooled copy is gone after the call; the store's own file stays.
    if (!(await readFile(lent).catch(() => undefined))?.equals(bytes)) assert.equal(await readFile(lent).catch(() => 'gone'), 'gone');
    await assert.rejects(store.withLocalFile(sha256(Buffer.from('missing')), async () => 'opened'), (err: unknown) => isAppError(err, 'not_found'));
  });

  test(`${driver.name}: a writer reads back what it was given, anywhere, before commit`, async (t) => {
    const { store } = await driver.open(t);
    const bytes = randomBytes(2 * 1024 * 1024);
    const writer = await store.createWriter();
    await writer.write(bytes.subarray(0, 1 << 20));
    await writer.write(bytes.subarray(1 << 20));
    assert.ok(Buffer.from(await writer.readAt(0, 12)).equals(bytes.subarray(0, 12)));
    assert.ok(Buffer.from(await writer.readAt((1 << 20) - 3, 10)).equals(bytes.subarray((1 << 20) - 3, (1 << 20) + 7)));
    await assert.rejects(writer.readAt(bytes.length - 1, 2));
    const lent = await writer.withLocalFile(async (path) => sha256(await readFile(path)));
    assert.equal(lent, sha256(bytes));
    await writer.abort();
    assert.deepEqual(await collect(store), []);
  });

  test(`${driver.name}: a wrong digest commits nothing; abort forgets; the same bytes twice are one blob`, async (t) => {
    const { store } = await driver.open(t);
    const bytes = Buffer.from('the same bytes');
    const wrong = await store.createWriter();
    await wrong.write(bytes);
    await assert.rejects(wrong.commit('0'.repeat(64)), (err: unknown) => isAppError(err) && /mismatch/.test(err.message));
    assert.equal(await store.size(sha256(bytes)), undefined);
    const aborted = await store.createWriter();
    await aborted.write(bytes);
    await aborted.abort();
    await aborted.abort();
    assert.deepEqual(await collect(store), []);
    for (let i = 0; i < 2; i++) {
      const w = await store.createWriter();
      await w.write(bytes);
      await w.commit();
    }
    assert.deepEqual(await collect(store), [sha256(bytes)]);
    await store.delete(sha256(bytes));
    assert.equal(await store.size(sha256(bytes)), undefined);
    await assert.rejects(store.openRead(sha256(bytes)), (err: unknown) => isAppError(err) && err.code === 'not_found');
  });

  test(`${driver.name}: cleaning staging keeps a live writer's bytes`, async (t) => {
    const { store } = await driver.open(t);
    const writer = await store.createWriter();
    await writer.write(Buffer.from('still being written'));
    await store.cleanStaging();
    await writer.write(Buffer.from(', and more'));
    const info = await writer.commit();
    assert.equal(info.size, 'still being written, and more'.length);
  });

  test(`${driver.name}: storing bytes that are there already leaves one blob`, async (t) => {
    const { store } = await driver.open(t);
    const bytes = Buffer.from('stored twice');
    for (let i = 0; i < 2; i++) {
      const writer = await store.createWriter();
      await writer.write(bytes);
      await writer.commit(sha256(bytes));
    }
    assert.deepEqual(await toArray(store.list()), [{ sha256: sha256(bytes), size: bytes.length }]);
  });

  test(`${driver.name}: an upload goes on by its id in another process, with its hash; one that is not there is not_found`, async (t) => {
    const { store, peer } = await driver.open(t);
    const bytes = randomBytes(3 * 1024 * 1024 + 5);
    const first = await store.createWriter();
    await first.write(bytes.subarray(0, 1_000_000));
    await first.write(bytes.subarray(1_000_000, 2_500_000));
    // The first process stops here (a request ended, a replica died): another picks the upload up.
    await first.suspend();
    await assert.rejects(first.write(bytes.subarray(0, 1)), 'a suspended writer writes no more');
    const other = await peer();
    const resumed = await other.resumeWriter(first.id);
    assert.equal(resumed.id, first.id);
    assert.equal(resumed.size, 2_500_000);
    assert.ok(Buffer.from(await resumed.readAt(999_990, 20)).equals(bytes.subarray(999_990, 1_000_010)));
    await resumed.write(bytes.subarray(2_500_000));
    assert.deepEqual(await resumed.commit(sha256(bytes)), { sha256: sha256(bytes), size: bytes.length });
    assert.ok(Buffer.concat(await (await store.openRead(sha256(bytes))).toArray()).equals(bytes));
    await assert.rejects(other.resumeWriter(first.id), (err: unknown) => isAppError(err, 'not_found'), 'published: no upload any more');
    for (const id of ['00000000-0000-0000-0000-000000000000', '../../etc', '']) {
      await assert.rejects(other.resumeWriter(id), (err: unknown) => isAppError(err, 'not_found'), id);
    }
  });

  test(`${driver.name}: cleaning staging removes an upload its writer left idle, and that writer fails`, async (t) => {
    const { store } = await driver.open(t);
    const left = await store.createWriter();
    await left.write(Buffer.from('left behind'));
    // Idle for longer than asked: object stores keep times to the second (Swift rounds them up).
    await sleep(2_100);
    await store.cleanStaging(10);
    await assert.rejects(store.resumeWriter(left.id), (err: unknown) => isAppError(err, 'not_found'));
    await assert.rejects(left.write(Buffer.from('more')).then(() => left.commit()));
    assert.deepEqual(await collect(store), []);
  });

  test(`${driver.name}: names that are not a sha256 are refused; a missing blob is not_found before any byte; delete is idempotent`, async (t) => {
    const { store } = await driver.open(t);
    for (const name of ['../etc/passwd', 'A'.repeat(64), 'a'.repeat(63), '']) {
      await assert.rejects(store.size(name), (err: unknown) => isAppError(err, 'invalid_argument'), name);
      await assert.rejects(store.openRead(name), (err: unknown) => isAppError(err, 'invalid_argument'), name);
    }
    const missing = 'a'.repeat(64);
    assert.equal(await store.size(missing), undefined);
    await assert.rejects(store.openCopy(missing), (err: unknown) => isAppError(err, 'not_found'));
    await assert.rejects(store.openCopy(missing, { start: 0, end: 9 }), (err: unknown) => isAppError(err, 'not_found'));
    await store.delete(missing);
    await store.delete(missing);
  });

  test(`${driver.name}: an opened blob is released unsent, and still reads after the blob was deleted`, async (t) => {
    const { store } = await driver.open(t);
    const writer = await store.createWriter();
    await writer.write(Buffer.from('opened, then deleted'));
    const { sha256: name } = await writer.commit();
    const unsent = await store.openCopy(name);
    await unsent.close();
    await unsent.close();
    // A download that started keeps its bytes when the collector deletes the blob meanwhile.
    const opened = await store.openCopy(name);
    await store.delete(name);
    const out = new PassThrough();
    const copied = text(out);
    await opened.copyTo(out);
    out.end();
    assert.equal(await copied, 'opened, then deleted');
    assert.equal(await store.size(name), undefined);
  });
}

/**
 * `redirectUrl`/`consolidate` (blob_redirect): a store that hands out URLs names a blob by one URL
 * only once it is one object; a store that does not answers undefined and has nothing to do.
 */
for (const driver of drivers) {
  test(`${driver.name}: a redirect URL reads the blob without wharf (whole or by range), once it is one object; a store without them says so`, async (t) => {
    const { store, peer } = await driver.open(t);
    // Three of the S3 driver's parts: stored in pieces until consolidated.
    const bytes = randomBytes(2 * s3PartSize + 12345);
    const writer = await store.createWriter();
    for (let at = 0; at < bytes.length; at += 1 << 20) await writer.write(bytes.subarray(at, at + (1 << 20)));
    const { sha256: name } = await writer.commit();
    const before = await store.redirectUrl(name, 60);
    if (driver.name !== 's3') {
      assert.equal(before, undefined, 'no URL from a store that hands out none');
      assert.equal(await store.consolidate(name), false);
      return;
    }
    assert.equal(before, undefined, 'a blob in parts has no single URL');
    // A download that opened the pieces before reads them to the end.
    const opened = await store.openCopy(name);
    assert.equal(await (await peer()).consolidate(name), true, 'consolidated by another process');
    assert.equal(await store.consolidate(name), false, 'once is enough');
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(Buffer.from(c)));
    await opened.copyTo(out);
    assert.ok(Buffer.concat(chunks).equals(bytes), 'the pieces opened before read whole');
    const url = await store.redirectUrl(name, 60);
    assert.ok(url, 'one object: a URL');
    const whole = await fetch(url);
    assert.equal(whole.status, 200);
    assert.equal(sha256(Buffer.from(await whole.arrayBuffer())), name);
    const ranged = await fetch(url, { headers: { range: `bytes=${s3PartSize - 5}-${s3PartSize + 4}` } });
    assert.equal(ranged.status, 206);
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(bytes.subarray(s3PartSize - 5, s3PartSize + 5)), 'a range across the old part boundary');
    assert.equal(sha256(Buffer.concat(await (await store.openRead(name)).toArray())), name, 'wharf reads it as before');
    assert.equal(await store.size(name), bytes.length);
    // A tampered URL opens nothing; a deleted blob has no URL.
    assert.equal((await fetch(url.replace(/X-Amz-Signature=[0-9a-f]/, (m) => m.slice(0, -1) + (m.endsWith('0') ? '1' : '0')))).status, 403);
    await store.delete(name);
    assert.equal(await store.redirectUrl(name, 60), undefined);
    assert.equal(await store.consolidate(name), false, 'nothing to consolidate once deleted');
    assert.deepEqual(await collect(store), []);
  });
}

test('s3: cleaning staging aborts the multipart upload of a consolidation whose writer died, not that of a live one', async (t) => {
  const location = s3Location(await useS3())!;
  const driver = new S3BlobDriver(location, { pathStyle: true });
  await driver.init();
  const s3 = new S3Client({ forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  t.after(() => {
    s3.destroy();
    return driver.close();
  });
  const begin = async (id: string) => {
    await driver.put(`${location.prefix}uploads/${id}/started`, Buffer.alloc(0));
    await s3.send(new CreateMultipartUploadCommand({ Bucket: location.bucket, Key: `${location.prefix}uploads/${id}/whole` }));
  };
  const dead = '00000000-0000-4000-8000-000000000001';
  const live = '00000000-0000-4000-8000-000000000002';
  await begin(dead);
  await begin(live);
  await sleep(2_100);
  // The live one's writer still touches its marker.
  await driver.put(`${location.prefix}uploads/${live}/started`, Buffer.alloc(0));
  await new Blobs(driver).cleanStaging(1_000);
  const pending = (await s3.send(new ListMultipartUploadsCommand({ Bucket: location.bucket }))).Uploads ?? [];
  assert.deepEqual(pending.map((u) => u.Key), [`${location.prefix}uploads/${live}/whole`]);
  assert.equal(await driver.uploadExists(dead), false);
  assert.equal(await driver.uploadExists(live), true);
});

test('filesystem: small ranges (read at once) and large ones (streamed) copy exactly; a file cut short fails the copy instead of sending less', async (t) => {
  const store = new FsBlobStore(await tempDir(t));
  await store.init();
  for (const size of [0, 1, 4096, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 3 * 1024 * 1024]) {
    const bytes = randomBytes(size);
    const writer = await store.createWriter();
    await writer.write(bytes);
    const { sha256: name } = await writer.commit();
    const ranges = size === 0 ? [{ start: 0, end: -1 }] : [{ start: 0, end: size - 1 }, { start: size >> 1, end: size - 1 }, { start: 0, end: (size >> 2) }];
    for (const range of ranges) {
      const out = new PassThrough();
      // Copied as they come: the store reuses its buffers once a write has completed.
      const chunks: Buffer[] = [];
      out.on('data', (chunk: Buffer) => chunks.push(Buffer.from(chunk)));
      await (await store.openCopy(name, range)).copyTo(out);
      out.end();
      assert.ok(Buffer.concat(chunks).equals(bytes.subarray(range.start, range.end + 1)), `${size} bytes, ${range.start}-${range.end}`);
    }
    if (size < 2) continue;
    await truncate(store.pathOf(name), size - 1);
    const out = new PassThrough();
    out.resume();
    await assert.rejects((await store.openCopy(name, { start: 0, end: size - 1 })).copyTo(out), /shorter than its record/, `${size} bytes`);
  }
});

// The filesystem driver only: its bytes can be damaged behind its back (a failing disk, a stray
// write), while the memory driver's are reachable through its own methods alone, which keep them whole.
test("filesystem: a cache keeps each file's last use: set on commit and by touch, listed by lastUses", async (t) => {
  const store = new FsBlobStore(await tempDir(t));
  await store.init();
  const before = Date.now();
  const writer = await store.createWriter();
  await writer.write(Buffer.from('used long ago'));
  const { sha256: sha } = await writer.commit();
  const [committed] = await toArray(store.lastUses());
  assert.ok(committed!.lastUseMs >= before - 1000, 'a commit is a use');
  const longAgo = new Date('2026-01-02T03:04:05Z');
  await store.touch(sha, longAgo);
  assert.deepEqual(await toArray(store.lastUses()), [{ sha256: sha, size: 13, lastUseMs: longAgo.getTime() }]);
  await assert.rejects(store.touch('b'.repeat(64), new Date()), (err: unknown) => isAppError(err, 'not_found'));
  await assert.rejects(store.touch('../x', new Date()), (err: unknown) => isAppError(err, 'invalid_argument'));
});

test('filesystem: committing the bytes of a blob damaged on disk repairs it; a reader that opened the damaged file keeps reading it whole', async (t) => {
  const store = new FsBlobStore(await tempDir(t));
  await store.init();
  const bytes = randomBytes(256 * 1024);
  const first = await store.createWriter();
  await first.write(bytes);
  const { sha256: name } = await first.commit();
  await writeFile(store.pathOf(name), flipped(bytes, 1000));
  const damaged = Buffer.concat(await (await store.openRead(name)).toArray());
  assert.notEqual(sha256(damaged), name, 'the file on disk was damaged');

  const reading = await store.openCopy(name);
  const again = await store.createWriter();
  await again.write(bytes);
  await again.commit(name);
  const repaired = Buffer.concat(await (await store.openRead(name)).toArray());
  assert.equal(sha256(repaired), name, 'the stored bytes are the committed ones again');
  assert.deepEqual(await collect(store), [name]);

  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(Buffer.from(chunk)));
  await reading.copyTo(out);
  out.end();
  assert.ok(Buffer.concat(chunks).equals(damaged), 'the file is replaced, not rewritten under an open reader');
});

async function toArray<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
