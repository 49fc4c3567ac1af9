/**
 * Mirror sync against an upstream that misbehaves: each fault gives a clear error or a retry,
 * and the published index stays consistent (whole versions only, no missing files).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs, buildQcow2 } from '../fixtures/images.ts';
import { fingerprintFrom, tempDir, wharfBin, wharfOk } from '../helpers/env.ts';
import { startFaultServer } from '../helpers/fault-server.ts';
import { loadConfig } from '../../src/config.ts';
import { openStore } from '../../src/factory.ts';
import { silentLogger } from '../../src/log.ts';
import { syncMirror } from '../../src/mirror/sync.ts';
import { buildProducts } from '../../src/domain/simplestreams.ts';
import { artifactPath } from '../../src/core/publish.ts';
import type { Store } from '../../src/core/context.ts';
import type { MirrorRecord } from '../../src/meta/store.ts';

async function upstreamTree(work: string) {
  const source = join(work, 'source');
  const fps: Record<string, string> = {};
  for (const [os, serial] of [['Debian', '20250101'], ['Debian', '20250201'], ['Alpine', '20250101']] as const) {
    const meta = await buildMetadataTarball(work, { name: `m-${os}-${serial}.tar.xz`, properties: { os, release: '1', architecture: 'amd64', serial: `${serial}_00:00` } });
    const sq = await buildSquashfs(work, { name: `s-${os}-${serial}.squashfs`, seed: `${os}${serial}` });
    fps[`${os}-${serial}`] = fingerprintFrom(await wharfOk(source, ['image', 'import', meta.path, sq.path]));
    if (os === 'Debian' && serial === '20250201') {
      const disk = await buildQcow2(work, { name: `d-${serial}.qcow2`, seed: serial });
      fps[`${os}-${serial}-vm`] = fingerprintFrom(await wharfOk(source, ['image', 'import', meta.path, disk.path]));
    }
  }
  const tree = join(work, 'tree');
  await wharfOk(source, ['tree', 'export', tree]);
  const products = JSON.parse(await readFile(join(tree, 'streams/v1/images.json'), 'utf8'));
  /** The artifact path of an image's rootfs (or VM disk). */
  const rootPath = (fp: string) => {
    for (const p of Object.values(products.products) as { versions: Record<string, { items: Record<string, Record<string, unknown>> }> }[]) {
      for (const v of Object.values(p.versions)) {
        const meta = v.items['lxd.tar.xz'];
        if (!meta) continue;
        if (meta.combined_squashfs_sha256 === fp) return String(v.items['root.squashfs']!.path);
        if (meta['combined_disk-kvm-img_sha256'] === fp) return String(v.items['disk.qcow2']!.path);
      }
    }
    throw new Error(`no ${fp}`);
  };
  return { tree, fps, rootPath };
}

/** What the local server would publish: every listed file must exist, versions whole. */
async function published(store: Store) {
  const images = await store.meta.listImages();
  const doc = buildProducts(images, await store.meta.listAliases(), artifactPath);
  for (const image of images.filter((i) => i.public)) {
    for (const blob of [image.metadata, image.rootfs]) if (blob) assert.ok(await store.blobs.size(blob.sha256), 'a published file is missing');
  }
  return { fingerprints: images.filter((i) => i.public).map((i) => i.fingerprint).sort(), doc };
}

/** A fault server over the upstream tree and a local store with that upstream as remote `up`, mirrored as `m`. */
async function mirroring(t: { after(fn: () => Promise<void>): void }) {
  const work = await tempDir(t);
  const { tree, fps, rootPath } = await upstreamTree(work);
  const upstream = await startFaultServer(tree);
  t.after(() => upstream.close());
  const data = join(work, 'local');
  const store = await openStore(await loadConfig(data, {}, {}), silentLogger);
  t.after(() => store.meta.close());
  await store.meta.putRemote({ name: 'up', url: upstream.base, protocol: 'simplestreams', public: true, certificate: '', gpgKey: '' });
  const mirror: MirrorRecord = { name: 'm', remote: 'up', filters: {}, types: [], keep: 5, intervalSeconds: 0, lazy: false, lastSync: null, lastError: null };
  return { fps, rootPath, upstream, data, store, mirror, fast: { backoffMs: 10, idleTimeoutMs: 500 } };
}

test('mirror sync survives a misbehaving upstream', async (t) => {
  const { fps, rootPath, upstream, data, store, mirror, fast } = await mirroring(t);
  await store.meta.putRemote({ name: 'gone', url: 'http://127.0.0.1:9', protocol: 'simplestreams', public: true, certificate: '', gpgKey: '' });

  await assert.rejects(syncMirror(store, { ...mirror, remote: 'gone' }, fast), /Cannot reach http:\/\/127\.0\.0\.1:9/);
  upstream.faults.set('streams/v1/images.json', 'status500');
  await assert.rejects(syncMirror(store, mirror, fast), /images\.json: HTTP 500/);
  // An index that never ends is refused at the document limit, not read until memory runs out.
  upstream.faults.set('streams/v1/images.json', 'endless');
  const heapBefore = process.memoryUsage().rss;
  await assert.rejects(syncMirror(store, mirror, fast), /images\.json is larger than 64 MiB/);
  assert.ok(process.memoryUsage().rss - heapBefore < 512 * 1024 * 1024, 'memory stays bounded');
  upstream.faults.clear();
  assert.deepEqual((await published(store)).fingerprints, []);

  // Per-file faults: each image fails on its own with a clear reason; the rest is mirrored.
  upstream.faults.set(rootPath(fps['Debian-20250201-vm']!), 'truncate');
  upstream.faults.set(rootPath(fps['Alpine-20250101']!), 'corrupt');
  upstream.faults.set(rootPath(fps['Debian-20250101']!), 'stall');
  const report = await syncMirror(store, mirror, fast);
  const reason = (key: string) => report.failed.find((f) => f.fingerprint === fps[key])?.error ?? '';
  assert.match(reason('Alpine-20250101'), /Hash mismatch/);
  assert.match(reason('Debian-20250101'), /stalled/);
  assert.match(reason('Debian-20250201-vm'), /truncated|aborted|socket hang up|ECONNRESET|closed/i);
  assert.deepEqual(report.added, [fps['Debian-20250201']]);
  // Retries: the stalled and cut-off files were tried three times, the corrupt one once.
  assert.equal(upstream.requests.filter((p) => p === rootPath(fps['Debian-20250101']!)).length, 3);
  assert.equal(upstream.requests.filter((p) => p === rootPath(fps['Alpine-20250101']!)).length, 1);
  // The squashfs of 20250201 arrived but its VM did not: that version is not published yet.
  let state = await published(store);
  assert.deepEqual(state.fingerprints, []);
  assert.match((await store.meta.listMirrors())[0]?.lastError ?? '', /images failed/);
  assert.deepEqual(await readdir(join(data, 'blobs', 'staging')), [], 'no half-written file is left');

  // The upstream mostly recovers but its index now lists a file it no longer has: the complete
  // versions are published, the other is not.
  upstream.faults.clear();
  upstream.faults.set(rootPath(fps['Debian-20250101']!), 'missing');
  const second = await syncMirror(store, mirror, fast);
  assert.deepEqual(second.failed.map((f) => f.fingerprint), [fps['Debian-20250101']]);
  assert.match(second.failed[0]!.error, /HTTP 404/);
  state = await published(store);
  assert.deepEqual(state.fingerprints, [fps['Alpine-20250101'], fps['Debian-20250201'], fps['Debian-20250201-vm']].sort());

  // And then recovers fully: the next sync completes and publishes the rest.
  upstream.faults.clear();
  const third = await syncMirror(store, mirror, fast);
  assert.deepEqual(third.failed, []);
  state = await published(store);
  assert.deepEqual(state.fingerprints, Object.values(fps).sort());
  assert.equal((await store.meta.listMirrors())[0]?.lastError, null);
});

test('an upstream that gzips its index is read as lxc reads it; a bad gzip, a bomb or an encoding not asked for is refused', async (t) => {
  const { fps, upstream, store, mirror, fast } = await mirroring(t);

  for (const [fault, refusal] of [
    ['gzipCorrupt', /images\.json is not valid gzip/],
    ['gzipTruncated', /images\.json: the answer was cut off/],
    ['truncate', /images\.json: the answer was cut off/],
    ['gzipBomb', /images\.json is larger than 64 MiB/],
    ['brotli', /images\.json came in the br encoding, which was not asked for/],
  ] as const) {
    upstream.faults.set('streams/v1/images.json', fault);
    await assert.rejects(syncMirror(store, mirror, fast), refusal, fault);
  }
  assert.deepEqual((await published(store)).fingerprints, [], 'nothing was taken from a refused index');

  upstream.faults.set('streams/v1/index.json', 'gzip');
  upstream.faults.set('streams/v1/images.json', 'gzip');
  const report = await syncMirror(store, mirror, fast);
  assert.deepEqual(report.failed, []);
  assert.deepEqual((await published(store)).fingerprints, Object.values(fps).sort());
  assert.match(upstream.acceptEncoding.get('streams/v1/images.json') ?? '', /\bgzip\b/, 'the index was asked for in gzip');
});

test('an upstream index naming files elsewhere: those images are refused, nothing outside the upstream is opened', async (t) => {
  const work = await tempDir(t);
  const { tree, fps, rootPath } = await upstreamTree(work);
  // The upstream's base is a folder of its server (/tree/), so climbing out of it is possible.
  const upstream = await startFaultServer(work);
  t.after(() => upstream.close());
  // A server the index points at: it must never be asked for anything.
  const elsewhere = await startFaultServer(work);
  t.after(() => elsewhere.close());
  const productsFile = join(tree, 'streams/v1/images.json');
  const text = await readFile(productsFile, 'utf8');
  await writeFile(
    productsFile,
    text
      .replaceAll(JSON.stringify(rootPath(fps['Alpine-20250101']!)), JSON.stringify(`${elsewhere.base}/secret`))
      .replaceAll(JSON.stringify(rootPath(fps['Debian-20250101']!)), JSON.stringify('%2e%2e/%2e%2e/etc/passwd')),
  );

  for (const lazy of [false, true]) {
    const data = join(work, `local-${lazy}`);
    const store = await openStore(await loadConfig(data, {}, {}), silentLogger);
    t.after(() => store.meta.close());
    await store.meta.putRemote({ name: 'up', url: `${upstream.base}/tree`, protocol: 'simplestreams', public: true, certificate: '', gpgKey: '' });
    const mirror: MirrorRecord = { name: 'm', remote: 'up', filters: {}, types: [], keep: 5, intervalSeconds: 0, lazy, lastSync: null, lastError: null };
    const report = await syncMirror(store, mirror, { backoffMs: 10 });
    const reason = (key: string) => report.failed.find((f) => f.fingerprint === fps[key])?.error ?? '';
    assert.match(reason('Alpine-20250101'), /lists a file outside itself/, `lazy=${lazy}`);
    assert.match(reason('Debian-20250101'), /lists a file outside itself/, `lazy=${lazy}`);
    assert.deepEqual(report.added.sort(), [fps['Debian-20250201'], fps['Debian-20250201-vm']].sort(), `lazy=${lazy}`);
  }
  assert.deepEqual(elsewhere.requests, []);
  assert.ok(!upstream.requests.some((p) => p.includes('passwd')), upstream.requests.join(' '));
});

test('a mirror sync killed half-way resumes, never serving a partial version', async (t) => {
  const work = await tempDir(t);
  const { tree, fps, rootPath } = await upstreamTree(work);
  const upstream = await startFaultServer(tree);
  t.after(() => upstream.close());
  const data = join(work, 'local');
  await wharfOk(data, ['remote', 'add', 'up', upstream.base]);
  await wharfOk(data, ['mirror', 'add', 'm', 'up', '--filter', 'os=debian']);
  // The VM disk of the newest version hangs, so the sync is surely mid-way when killed.
  upstream.faults.set(rootPath(fps['Debian-20250201-vm']!), 'stall');
  const child = spawn(wharfBin, ['--data-dir', data, 'mirror', 'sync'], { stdio: 'ignore' });
  const started = Date.now();
  while (!upstream.requests.includes(rootPath(fps['Debian-20250201-vm']!)) || !upstream.requests.includes(rootPath(fps['Debian-20250201']!))) {
    assert.ok(Date.now() - started < 20_000, 'the sync never got going');
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 500));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('close', r));

  const store = await openStore(await loadConfig(data, {}, {}), silentLogger);
  t.after(() => store.meta.close());
  const state = await published(store);
  assert.ok(!state.fingerprints.includes(fps['Debian-20250201']!), 'a version missing its VM is not published');

  upstream.faults.clear();
  await wharfOk(data, ['mirror', 'sync']);
  assert.deepEqual((await published(store)).fingerprints, [fps['Debian-20250101'], fps['Debian-20250201'], fps['Debian-20250201-vm']].sort());
  assert.match(await wharfOk(data, ['image', 'verify']), /ok/);
});

test('an upstream that changes during a sync: the sync finishes on what it read, the next one catches up', async (t) => {
  const work = await tempDir(t);
  const source = join(work, 'source');
  const version = async (serial: string) => {
    const meta = await buildMetadataTarball(work, { name: `m${serial}.tar.xz`, properties: { os: 'Debian', release: '1', architecture: 'amd64', serial: `${serial}_00:00` } });
    const sq = await buildSquashfs(work, { name: `s${serial}.squashfs`, seed: serial });
    return fingerprintFrom(await wharfOk(source, ['image', 'import', meta.path, sq.path]));
  };
  const v1 = await version('20250101');
  const tree = join(work, 'tree');
  await wharfOk(source, ['tree', 'export', tree]);
  const upstream = await startFaultServer(tree);
  t.after(() => upstream.close());
  // The first file request of the sync triggers a new upstream release, index and files.
  let v2 = '';
  upstream.beforeEach = async (path) => {
    if (!path.startsWith('files/') || v2) return;
    v2 = await version('20250201');
    await wharfOk(source, ['tree', 'export', tree]);
  };
  const store = await openStore(await loadConfig(join(work, 'local'), {}, {}), silentLogger);
  t.after(() => store.meta.close());
  await store.meta.putRemote({ name: 'up', url: upstream.base, protocol: 'simplestreams', public: true, certificate: '', gpgKey: '' });
  const mirror: MirrorRecord = { name: 'm', remote: 'up', filters: {}, types: [], keep: 1, intervalSeconds: 0, lazy: false, lastSync: null, lastError: null };
  const first = await syncMirror(store, mirror, { backoffMs: 10 });
  assert.deepEqual(first.failed, []);
  assert.deepEqual((await published(store)).fingerprints, [v1]);
  assert.ok(v2, 'the upstream changed mid-sync');
  upstream.beforeEach = undefined;
  await syncMirror(store, mirror, { backoffMs: 10 });
  assert.deepEqual((await published(store)).fingerprints, [v2], 'the new release replaces the old (keep 1)');
});

test('a full disk fails the sync cleanly', { skip: process.getuid?.() !== 0 ? 'mounting a small tmpfs needs root' : false }, async (t) => {
  const work = await tempDir(t);
  const { tree } = await upstreamTree(work);
  const upstream = await startFaultServer(tree);
  t.after(() => upstream.close());
  const data = join(work, 'small');
  await mkdir(data);
  // Room for the databases (their schema grows with the migrations) and some of the files, not all.
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1800k', 'tmpfs', data]);
  assert.equal(mounted.status, 0, `mount failed: ${mounted.stderr}`);
  const store = await openStore(await loadConfig(data, {}, {}), silentLogger);
  try {
    await store.meta.putRemote({ name: 'up', url: upstream.base, protocol: 'simplestreams', public: true, certificate: '', gpgKey: '' });
    const report = await syncMirror(store, { name: 'm', remote: 'up', filters: {}, types: [], keep: 5, intervalSeconds: 0, lazy: false, lastSync: null, lastError: null }, { backoffMs: 10 });
    assert.ok(report.failed.length > 0, 'some images cannot fit');
    assert.ok(report.failed.every((f) => /the blob store is full; nothing was stored/i.test(f.error)), report.failed.map((f) => f.error).join('; '));
    assert.deepEqual(await readdir(join(data, 'blobs', 'staging')), []);
    await published(store);
  } finally {
    await store.meta.close();
    spawnSync('umount', ['-l', data]);
  }
});
