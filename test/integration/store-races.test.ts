/**
 * The store under concurrency and failure: the collector racing imports, imports killed
 * mid-way, a full disk while the database commits, and the small ways a command could lie about
 * what it did.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { buildMetadataTarball, buildRootfsTarball, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, tempDir, wharf, wharfBin, wharfOk } from '../helpers/env.ts';
import { openStore } from '../../src/factory.ts';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { importImage } from '../../src/core/import.ts';
import { deleteImages, verifyImages } from '../../src/core/images.ts';
import { collectGarbage } from '../../src/core/collect.ts';
import type { Store } from '../../src/core/context.ts';
import { isAppError } from '../../src/errors.ts';

async function openTestStore(t: { after(fn: () => Promise<void>): void }, data: string): Promise<Store> {
  const store = await openStore(await loadConfig(data, { gracePeriod: 0 }, {}), silentLogger);
  t.after(() => store.meta.close());
  return store;
}

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  let reach!: () => void;
  const reached = new Promise<void>((resolve) => (reach = resolve));
  return { open, opened, reach, reached };
}

const importFile = (store: Store, path: string) => importImage(store, { sources: [{ name: path, chunks: createReadStream(path) }] });

/** A store whose image file is no longer used by any image, so the collector wants it. */
async function storeWithCollectableFile(t: { after(fn: () => Promise<void>): void }) {
  const work = await tempDir(t);
  const unified = await buildUnified(work, { compression: 'gzip', name: 'unified.tar.gz' });
  const store = await openTestStore(t, join(work, 'data'));
  const first = await importFile(store, unified.path);
  await deleteImages(store, [first.fingerprint]);
  return { store, unified, sha: first.metadata.sha256 };
}

test('the collector never deletes a file an import is about to record', async (t) => {
  const { store, unified, sha } = await storeWithCollectableFile(t);
  // Hold the import between storing its (deduplicated) file and recording the image.
  const held = gate();
  const meta = new Proxy(store.meta, {
    get(target, key, receiver) {
      if (key !== 'insertImage') return Reflect.get(target, key, receiver);
      return async (...args: Parameters<typeof target.insertImage>) => {
        held.reach();
        await held.opened;
        return target.insertImage(...args);
      };
    },
  });
  const importing = importFile({ ...store, meta }, unified.path);
  await held.reached;
  const { removed } = await collectGarbage(store);
  assert.deepEqual(removed, [], 'the file being imported was collected');
  held.open();
  const image = await importing;
  assert.ok(await store.blobs.size(sha), 'the imported image has its file');
  assert.deepEqual((await verifyImages(store, [image.fingerprint])).map((r) => r.problems), [[]]);
  // Once recorded and in use, the file is still not collectable.
  assert.deepEqual((await collectGarbage(store)).removed, []);
});

test('an import of a file being collected waits, then stores its own bytes', async (t) => {
  const { store, unified, sha } = await storeWithCollectableFile(t);
  // Hold the collector between deciding to delete the file and deleting it.
  const held = gate();
  const blobs = new Proxy(store.blobs, {
    get(target, key, receiver) {
      if (key !== 'delete') return Reflect.get(target, key, receiver);
      return async (sha256: string) => {
        held.reach();
        await held.opened;
        return target.delete(sha256);
      };
    },
  });
  const collecting = collectGarbage({ ...store, blobs });
  await held.reached;
  let imported = false;
  const importing = importFile(store, unified.path).then((image) => {
    imported = true;
    return image;
  });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(imported, false, 'the import recorded its image while the file was being deleted');
  held.open();
  assert.deepEqual((await collecting).removed, [sha]);
  const image = await importing;
  assert.ok(await store.blobs.size(sha), 'the import put its bytes back after the collection');
  assert.deepEqual((await verifyImages(store, [image.fingerprint])).map((r) => r.problems), [[]]);
});

test('prune removes the staging files of a killed import at once', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  await wharfOk(data, ['image', 'list']);
  // Large enough that the import is still writing when it is killed.
  const meta = await buildMetadataTarball(work);
  const rootfs = await buildRootfsTarball(work, { compression: 'none', padMiB: 400 });
  const child = spawn(wharfBin, ['--data-dir', data, 'image', 'import', meta.path, rootfs.path], { stdio: 'ignore' });
  const exited = once(child, 'exit');
  const staging = join(data, 'blobs', 'staging');
  const deadline = Date.now() + 20_000;
  let staged: string[] = [];
  while (Date.now() < deadline) {
    staged = await readdir(staging).catch(() => []);
    const sizes = await Promise.all(staged.map((n) => stat(join(staging, n)).then((s) => s.size, () => 0)));
    if (sizes.some((s) => s > 0)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(staged.length > 0, 'the import never staged anything');
  child.kill('SIGKILL');
  await exited;
  assert.ok((await readdir(staging)).length > 0, 'the killed import left its staging file');

  await wharfOk(data, ['prune']);
  assert.deepEqual(await readdir(staging), [], 'prune left the dead import\'s staging file');
});

test('prune leaves the staging files of a live writer alone', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  await wharfOk(data, ['image', 'list']);
  const staging = join(data, 'blobs', 'staging');
  await mkdir(staging, { recursive: true });
  // This test process is alive: its file is an import in progress, not a leftover.
  const live = join(staging, `${process.pid}-00000000-0000-0000-0000-000000000000.part`);
  await writeFile(live, 'in progress');
  await wharfOk(data, ['prune']);
  assert.deepEqual(await readdir(staging), [`${process.pid}-00000000-0000-0000-0000-000000000000.part`]);
});

test('a full disk while the database commits says so and changes nothing', { skip: process.getuid?.() !== 0 ? 'mounting a small tmpfs needs root' : false }, async (t) => {
  const work = await tempDir(t);
  const unified = await buildUnified(work, { compression: 'gzip', name: 'unified.tar.gz' });
  const data = join(work, 'data');
  await mkdir(data);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', data]);
  assert.equal(mounted.status, 0, `mount failed: ${mounted.stderr}`);
  // Unmounted before the temp dir is removed (after-hooks run in the order they were added).
  const store = await openStore(await loadConfig(data, { gracePeriod: 0 }, {}), silentLogger);
  try {
    const image = await importFile(store, unified.path);
    // Fill what is left, so that the next write to the database's log has no room.
    const filler = createWriteStream(join(data, 'filler'));
    const block = Buffer.alloc(64 * 1024, 1);
    await new Promise<void>((resolve) => {
      const more = () => {
        while (filler.write(block));
        filler.once('drain', more);
      };
      filler.on('error', () => resolve());
      more();
    });
    const aliasesBefore = await store.meta.listAliases();
    const names = Array.from({ length: 200 }, (_, i) => `alias-${i}-${'x'.repeat(200)}`);
    let failure: unknown;
    try {
      for (const name of names) await store.meta.createAlias({ name, fingerprint: image.fingerprint, description: 'y'.repeat(2000), type: image.type });
    } catch (err) {
      failure = err;
    }
    assert.ok(failure, 'the disk never filled up');
    assert.ok(isAppError(failure, 'disk_full'), `expected a disk_full error, got: ${(failure as Error).message}`);
    assert.match((failure as Error).message, /full/);
    // Whatever went in before the disk filled is whole; the failed change is not half there.
    const after = await store.meta.listAliases();
    assert.ok(after.length >= aliasesBefore.length && after.every((a) => names.includes(a.name) || aliasesBefore.some((b) => b.name === a.name)));
    assert.ok(after.length < names.length, 'every alias went in although the disk was full');
  } finally {
    await store.meta.close();
    spawnSync('umount', ['-l', data]);
  }
});

test('deleting the same image named twice deletes it once and succeeds', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const unified = await buildUnified(work, { compression: 'gzip', name: 'unified.tar.gz' });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', unified.path, '--alias', 'twice']));
  const result = await wharf(data, ['image', 'delete', 'twice', fp.slice(0, 12)]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])).length, 0);
});

test('a delete of several images that another delete overtakes deletes none, and names the image as it was typed', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  for (const name of ['a', 'b']) {
    const image = await buildUnified(work, { name: `${name}.tar.gz`, seed: name, properties: { os: name, release: '1' } });
    await wharfOk(data, ['image', 'import', image.path, '--alias', name]);
  }
  const store = await openTestStore(t, data);
  const other = await openTestStore(t, data);
  const b = (await store.meta.getAlias('b'))!.fingerprint;
  // Another process deletes b between this delete's resolving the names and its deleting them.
  const racing = Object.assign(Object.create(store.meta) as Store['meta'], {
    deleteImages: async (fingerprints: string[]) => {
      await other.meta.deleteImages([b]);
      return store.meta.deleteImages(fingerprints);
    },
  });
  await assert.rejects(deleteImages({ ...store, meta: racing }, ['a', 'b']), (err: unknown) => isAppError(err, 'not_found') && /^Image "b" not found/.test((err as Error).message));
  assert.deepEqual((await store.meta.listAliases()).map((a) => a.name), ['a'], 'a is still there: nothing was deleted');
});

test('a server that cannot bind its port says why and nothing else', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const port = (blocker.address() as { port: number }).port;
  const result = await wharf(data, ['serve', '--https', `127.0.0.1:${port}`]);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /EADDRINUSE|in use/i);
  assert.doesNotMatch(result.stderr + result.stdout, /finalized|index refresh failed/);
});

test('a split import is refused on its metadata before the rootfs is read', async (t) => {
  const work = await tempDir(t);
  const store = await openTestStore(t, join(work, 'data'));
  // An LXC-style metadata tarball (no metadata.yaml), and a unified one where a split is expected.
  const lxcStyle = await buildMetadataTarball(work, { name: 'meta-lxc.tar.xz', noMetadataYaml: true });
  const unified = await buildUnified(work, { compression: 'gzip', name: 'unified.tar.gz' });
  for (const [meta, message] of [
    [lxcStyle.path, /no metadata\.yaml/],
    [unified.path, /unified image/],
  ] as const) {
    let rootfsRead = false;
    const rootfs = {
      name: 'rootfs.tar.xz',
      chunks: (async function* () {
        rootfsRead = true;
        yield new Uint8Array(512);
      })(),
    };
    await assert.rejects(importImage(store, { sources: [{ name: meta, chunks: createReadStream(meta) }, rootfs] }), message);
    assert.equal(rootfsRead, false, `the rootfs was read although ${meta} was already refused`);
  }
  assert.deepEqual(await store.meta.listImages(), []);
});

test('commands started together on a new data directory all find it ready', async (t) => {
  const work = await tempDir(t);
  // Missing parents too: every process creates them, the database and its WAL switch at once.
  for (let round = 0; round < 5; round++) {
    const data = join(work, `round-${round}`, 'nested', 'data');
    const results = await Promise.all(Array.from({ length: 8 }, () => wharf(data, ['image', 'list', '--format', 'json'])));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
  }
});

test('a data directory that cannot be created is an error at once, not a hang', async () => {
  const started = Date.now();
  const result = await wharf('/proc/wharf-cannot/exist', ['image', 'list']);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /^Error: .*ENOENT/);
  assert.ok(Date.now() - started < 10_000, 'answered within seconds');
});
