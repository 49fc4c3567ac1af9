/**
 * `wharf image verify --published`: what a server or tree serves, checked as current clients
 * check it (sizes, sha256, combined fingerprints in both vocabularies, paths under the base), for
 * every client view; and every kind of lie in an index found, without opening anything outside.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { buildMetadataTarball, buildQcow2, buildRootfsTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';

interface Item {
  ftype: string;
  path: string;
  sha256: string;
  size: number;
  [k: string]: unknown;
}
type Products = { products: Record<string, { versions: Record<string, { items: Record<string, Item> }> }> };

async function store(work: string) {
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Testlinux', release: '1.0', architecture: 'amd64' } });
  for (const rootfs of [await buildSquashfs(work, { seed: 'sq' }), await buildRootfsTarball(work, { compression: 'xz', seed: 'tar' }), await buildQcow2(work, { seed: 'vm' })]) {
    await wharfOk(data, ['image', 'import', meta.path, rootfs.path]);
  }
  await wharfOk(data, ['image', 'import', (await buildUnified(work, { properties: { os: 'Uni', release: '2', architecture: 'amd64' } })).path]);
  await wharfOk(data, ['image', 'import', (await buildUnified(work, { vm: true, name: 'uvm.tar.gz', properties: { os: 'Univm', release: '3', architecture: 'amd64' } })).path]);
  return data;
}

test('what wharf serves passes, for every client view, over HTTPS and as an exported tree', async (t) => {
  const work = await tempDir(t);
  const data = await store(work);
  const server = await serve(t, data);
  const cert = join(work, 'server.crt');
  await writeFile(cert, server.tls.cert);
  const out = await wharfOk(data, ['image', 'verify', '--published', server.base, '--certificate', cert]);
  // Incus before 7.1 cannot use a unified VM image, so its view offers one image fewer.
  assert.match(out, /images offered: lxd 5, incus-6 4, incus 5/);
  assert.match(out, /^(\d+) files/);
  // One metadata tarball shared by three builds (listed under both vocabularies), three rootfs, two
  // unified tarballs: each downloaded once, whichever views and items list it.
  assert.equal(Number(/^(\d+) files/.exec(out)![1]), 6);

  const refused = await wharf(data, ['image', 'verify', '--published', server.base]);
  assert.equal(refused.code, 69, 'a self-signed server is not trusted without --certificate');

  // A static tree answers every client alike: by default it keeps the unified VM image (for
  // transport and current clients), and the check says who would misread it; --portable leaves
  // it out.
  const tree = join(work, 'tree');
  const exported = await wharf(data, ['tree', 'export', tree]);
  assert.match(exported.stderr, /1 unified VM images are in the tree/);
  const misread = await wharf(data, ['image', 'verify', '--published', tree]);
  assert.equal(misread.code, 76);
  assert.match(misread.stdout, /\[incus-6\] univm\S* \S+ incus_combined\.tar\.gz: a unified VM image, which this client reads as a container/);
  const portable = join(work, 'portable');
  assert.match(await wharfOk(data, ['tree', 'export', portable, '--portable']), /Exported 4 images/);
  assert.match(await wharfOk(data, ['image', 'verify', '--published', portable]), /images offered: lxd 4, incus-6 4, incus 4\n$/);
});

test('every lie in a published index is found, and nothing outside the base is opened', async (t) => {
  const work = await tempDir(t);
  const data = await store(work);
  const tree = join(work, 'tree');
  await wharfOk(data, ['tree', 'export', tree, '--portable']);
  await wharfOk(data, ['image', 'verify', '--published', tree]);
  const original = JSON.parse(await readFile(join(tree, 'streams/v1/images.json'), 'utf8')) as Products;
  const items = (doc: Products, product: string) => Object.values(doc.products[Object.keys(doc.products).find((k) => k.startsWith(product))!]!.versions)[0]!.items;

  async function check(name: string, tamper: (doc: Products, dir: string) => Promise<void> | void, expected: RegExp) {
    const dir = join(work, name);
    await cp(tree, dir, { recursive: true });
    const doc = structuredClone(original);
    await tamper(doc, dir);
    await writeFile(join(dir, 'streams/v1/images.json'), JSON.stringify(doc));
    const r = await wharf(data, ['image', 'verify', '--published', dir]);
    assert.equal(r.code, 76, `${name}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, expected, name);
    return r;
  }

  await check('flipped-byte', async (doc, dir) => {
    const squash = Object.values(items(doc, 'testlinux')).find((i) => i.ftype === 'squashfs')!;
    const bytes = await readFile(join(dir, squash.path));
    bytes[100] = bytes[100]! ^ 1;
    await writeFile(join(dir, squash.path), bytes);
  }, /squashfs\S* hashes to [0-9a-f]{64}, listed as/);
  await check('combined', (doc) => {
    const meta = Object.values(items(doc, 'testlinux')).find((i) => i.ftype === 'incus.tar.xz')!;
    meta['combined_disk-kvm-img_sha256'] = 'ab'.repeat(32);
  }, /incus\.tar\.xz combined_disk-kvm-img_sha256: sha256\(.*\) is [0-9a-f]{64}, listed as (ab)+/);
  await check('lxd-vocabulary', (doc) => {
    const meta = Object.values(items(doc, 'testlinux')).find((i) => i.ftype === 'lxd.tar.xz')!;
    meta.combined_rootxz_sha256 = meta.combined_squashfs_sha256;
  }, /lxd\.tar\.xz combined_rootxz_sha256: sha256/);
  await check('size', (doc) => {
    Object.values(items(doc, 'uni'))[0]!.size += 1;
  }, /is \d+ bytes, listed as \d+/);
  await check('uppercase', (doc) => {
    const meta = Object.values(items(doc, 'testlinux')).find((i) => i.ftype === 'incus.tar.xz')!;
    meta.combined_squashfs_sha256 = String(meta.combined_squashfs_sha256).toUpperCase();
  }, /combined_squashfs_sha256 "[0-9A-F]{64}" is not 64 lowercase hex digits/);
  await check('missing-root', (doc) => {
    const version = items(doc, 'testlinux');
    const key = Object.keys(version).find((k) => version[k]!.ftype === 'root.tar.xz')!;
    delete version[key];
  }, /combined_rootxz_sha256 names a root\.tar\.xz the version does not list/);

  // Paths that climb out of the tree: reported, never opened (the outside file has the listed
  // bytes, so only a check that opened it would pass it).
  const secret = join(work, 'outside.bin');
  await writeFile(secret, 'outside');
  const escaping = await check('escape', (doc) => {
    const item = Object.values(items(doc, 'uni'))[0]!;
    item.path = '../outside.bin';
    item.size = 7;
  }, /lists a file outside itself: "\.\.\/outside\.bin"/);
  assert.doesNotMatch(escaping.stdout, /outside\.bin is|outside\.bin hashes/);
  await check('absolute', (doc) => {
    Object.values(items(doc, 'uni'))[0]!.path = `/${Object.values(items(doc, 'uni'))[0]!.path}`;
  }, /is absolute/);
  await check('other-host', (doc) => {
    Object.values(items(doc, 'uni'))[0]!.path = 'https://127.0.0.1:1/x';
  }, /lists a file outside itself: "https:/);
});
