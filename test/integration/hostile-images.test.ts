/**
 * Image files built to get past the import checks: disks that make qemu open other files or
 * connect out, tarballs whose rootfs.img is no disk or whose metadata.yaml an extractor and wharf
 * would read differently, hollow squashfs files, dates no Date can hold. Each is imported with
 * the real CLI and must fail with a clear message, leaving the store exactly as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildQcow2, buildRawTarball, buildSquashfs, metadataYamlText, type RawTarEntry } from '../fixtures/images.ts';
import { tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { storeState } from '../helpers/store-state.ts';
import { checkQcow2 } from '../../src/core/ingest.ts';

/** A copy of `src` with some bytes overwritten: header fields forged on a real qemu-img disk. */
async function patched(src: string, dest: string, patch: (b: Buffer) => void): Promise<string> {
  const bytes = await readFile(src);
  patch(bytes);
  await writeFile(dest, bytes);
  return dest;
}

/** Points the disk's backing file at `target` (written inside the first cluster, as qemu-img does). */
const withBacking = (target: string) => (b: Buffer) => {
  const name = Buffer.from(target);
  name.copy(b, 0x1000);
  b.writeBigUInt64BE(0x1000n, 8);
  b.writeUInt32BE(name.length, 16);
};

/** A loopback TCP listener that records whether anything connected. */
async function listener(t: { after(fn: () => Promise<void>): void }) {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as { port: number }).port;
  return { port, connections: () => sockets.length };
}

const nbdBacking = (port: number) => `json:{"driver":"nbd","server":{"type":"inet","host":"127.0.0.1","port":"${port}"}}`;

/** qemu-img as wharf ran it before: no json: target, the inherited environment. */
function plainQemuCheck(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('qemu-img', ['check', '--force-share', '-q', '-f', 'qcow2', path], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? -1));
  });
}

test('qemu-img as wharf runs it opens neither a backing file nor an nbd server the disk names', async (t) => {
  const work = await tempDir(t);
  const good = await buildQcow2(work, { seed: 'qemu' });
  const net = await listener(t);
  const nbd = await patched(good.path, join(work, 'nbd.qcow2'), withBacking(nbdBacking(net.port)));
  const missing = await patched(good.path, join(work, 'missing.qcow2'), withBacking(join(work, 'no-such-backing-file')));

  // The forgeries are live: qemu-img run plainly connects out and looks for the backing file.
  assert.notEqual(await plainQemuCheck(nbd), 0);
  assert.ok(net.connections() > 0, 'the plain qemu-img check connected to the nbd server');
  assert.notEqual(await plainQemuCheck(missing), 0);

  // Run as ingest runs it (the header check bypassed), neither is opened.
  const before = net.connections();
  await checkQcow2(nbd, 'nbd.qcow2');
  await checkQcow2(missing, 'missing.qcow2');
  assert.equal(net.connections(), before, 'no connection to the nbd server');
});

test('hostile image files are refused with a clear error and change nothing', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { name: 'meta-good.tar.xz' });
  const squashfs = await buildSquashfs(work, { seed: 'good' });
  await wharfOk(data, ['image', 'import', meta.path, squashfs.path, '--alias', 'taken']);
  const before = await storeState(data);
  const net = await listener(t);

  const dir = join(work, 'bad');
  await mkdir(dir);
  const good = await buildQcow2(dir, { seed: 'hostile' });
  const backed = await buildQcow2(dir, { name: 'backed.qcow2', backingFile: '/etc/hostname' });
  const external = await buildQcow2(dir, { name: 'external.qcow2', dataFile: join(dir, 'external.raw') });
  await writeFile(join(dir, 'external.raw'), Buffer.alloc(16 << 20));
  const sq = await buildSquashfs(dir, { seed: 'hostile' });
  const yaml = metadataYamlText();
  const disk = await readFile(good.path);
  const unified = async (name: string, entries: RawTarEntry[]) => (await buildRawTarball(dir, name, entries)).path;
  const vm = async (name: string, rootfsImg: Buffer | string) =>
    unified(name, [{ name: 'metadata.yaml', content: yaml }, { name: 'rootfs.img', content: rootfsImg }]);
  const rootfs: RawTarEntry[] = [
    { name: 'rootfs/', type: 'directory' },
    { name: 'rootfs/etc/hostname', content: 'x\n' },
  ];

  const cases: { name: string; args: () => Promise<string[]>; message: RegExp }[] = [
    {
      name: 'qcow2 with a backing file',
      args: async () => [meta.path, backed.path],
      message: /backed\.qcow2 has a backing file/,
    },
    {
      name: 'qcow2 whose backing file is an nbd server',
      args: async () => [meta.path, await patched(good.path, join(dir, 'nbd.qcow2'), withBacking(nbdBacking(net.port)))],
      message: /nbd\.qcow2 has a backing file/,
    },
    {
      name: 'qcow2 with an external data file',
      args: async () => [meta.path, external.path],
      message: /external\.qcow2 keeps its data in an external file/,
    },
    {
      name: 'qcow2 naming a data file without the feature bit',
      args: async () => [meta.path, await patched(external.path, join(dir, 'data-ext.qcow2'), (b) => (b[79] = b[79]! & ~4))],
      message: /data-ext\.qcow2 names an external data file/,
    },
    {
      name: 'qcow2 marked corrupt',
      args: async () => [meta.path, await patched(good.path, join(dir, 'corrupt.qcow2'), (b) => (b[79] = b[79]! | 2))],
      message: /corrupt\.qcow2 is not a usable qcow2 disk: qemu marked it corrupt/,
    },
    {
      name: 'qcow2 with an unknown incompatible feature',
      args: async () => [meta.path, await patched(good.path, join(dir, 'future.qcow2'), (b) => (b[78] = 1))],
      message: /future\.qcow2 is not a usable qcow2 disk: unknown incompatible features 0x100/,
    },
    {
      name: 'qcow2 whose L1 table lies past its end',
      args: async () => [meta.path, await patched(good.path, join(dir, 'l1.qcow2'), (b) => b.writeBigUInt64BE(1n << 40n, 40))],
      message: /l1\.qcow2 is not a valid qcow2 disk: its L1 table/,
    },
    {
      // qemu-img itself refuses this one: its message must name the file, not the staging copy.
      name: 'qcow2 qemu-img cannot open',
      args: async () => [meta.path, await patched(good.path, join(dir, 'huge.qcow2'), (b) => b.writeBigUInt64BE(1n << 60n, 24))],
      message: /huge\.qcow2 is not a valid qcow2 disk: Could not open '.*huge\.qcow2': Image is too big/,
    },
    {
      name: 'unified VM whose rootfs.img is text',
      args: async () => [await vm('text-vm.tar', 'not a disk\n'.repeat(64))],
      message: /text-vm\.tar: rootfs\.img is not a usable qcow2 disk: it has no qcow2 magic/,
    },
    {
      name: 'unified VM whose rootfs.img has a backing file',
      args: async () => [await vm('backed-vm.tar', await readFile(backed.path))],
      message: /backed-vm\.tar: rootfs\.img has a backing file/,
    },
    {
      name: 'unified VM whose rootfs.img keeps its data outside',
      args: async () => [await vm('external-vm.tar', await readFile(external.path))],
      message: /external-vm\.tar: rootfs\.img keeps its data in an external file/,
    },
    {
      name: 'unified VM with two rootfs.img',
      args: async () => [await unified('two-disks.tar', [{ name: 'metadata.yaml', content: yaml }, { name: 'rootfs.img', content: disk }, { name: './rootfs.img', content: 'x' }])],
      message: /two-disks\.tar holds more than one rootfs\.img/,
    },
    {
      name: 'hollow squashfs (magic and zeros)',
      args: async () => {
        const hollow = Buffer.alloc(64 * 1024);
        hollow.write('hsqs', 0, 'latin1');
        await writeFile(join(dir, 'hollow.squashfs'), hollow);
        return [meta.path, join(dir, 'hollow.squashfs')];
      },
      message: /hollow\.squashfs is not a valid squashfs: version 0\.0 is not 4\.0/,
    },
    {
      name: 'squashfs whose id table starts past its end',
      args: async () => [meta.path, await patched(sq.path, join(dir, 'tables.squashfs'), (b) => b.writeBigUInt64LE(b.readBigUInt64LE(40) + 8n, 48))],
      message: /tables\.squashfs is not a valid squashfs: the id table/,
    },
    {
      name: 'two metadata.yaml in a unified image',
      args: async () => [
        await unified('two-meta.tar', [{ name: 'metadata.yaml', content: yaml }, ...rootfs, { name: 'rootfs/../metadata.yaml', content: metadataYamlText({ architecture: 'aarch64' }) }]),
      ],
      message: /two-meta\.tar holds more than one metadata\.yaml/,
    },
    {
      name: 'two metadata.yaml in a metadata tarball',
      args: async () => [await unified('two-meta-split.tar', [{ name: './metadata.yaml', content: yaml }, { name: '/metadata.yaml', content: yaml }]), sq.path],
      message: /two-meta-split\.tar holds more than one metadata\.yaml/,
    },
    {
      name: 'metadata.yaml as a symlink',
      args: async () => [await unified('symlink-meta.tar', [{ name: 'metadata.yaml', type: 'symlink', target: '/etc/passwd' }]), sq.path],
      message: /symlink-meta\.tar has no metadata\.yaml file: its metadata\.yaml is a symlink, not a regular file/,
    },
    {
      name: 'metadata.yaml as a hard link',
      args: async () => [await unified('link-meta.tar', [{ name: 'real.yaml', content: yaml }, { name: './metadata.yaml', type: 'link', target: 'real.yaml' }]), sq.path],
      message: /link-meta\.tar has no metadata\.yaml file: its metadata\.yaml is a link, not a regular file/,
    },
    {
      name: 'creation_date past year 9999',
      args: async () => [(await buildMetadataTarball(dir, { rawYaml: 'architecture: x86_64\ncreation_date: 99999999999999\n', name: 'far.tar.xz' })).path, sq.path],
      message: /metadata\.yaml: creation_date 99999999999999 is after the year 9999/,
    },
    {
      name: 'expiry_date past year 9999',
      args: async () => [(await buildMetadataTarball(dir, { rawYaml: 'architecture: x86_64\ncreation_date: 1\nexpiry_date: 99999999999999\n', name: 'exp.tar.xz' })).path, sq.path],
      message: /metadata\.yaml: expiry_date 99999999999999 is after the year 9999/,
    },
    {
      name: 'negative creation_date',
      args: async () => [(await buildMetadataTarball(dir, { rawYaml: 'architecture: x86_64\ncreation_date: -1\n', name: 'neg.tar.xz' })).path, sq.path],
      message: /metadata\.yaml: creation_date must be a Unix timestamp in seconds, got -1/,
    },
  ];

  for (const c of cases) {
    const result = await wharf(data, ['image', 'import', ...(await c.args())]);
    assert.notEqual(result.code, 0, `${c.name}: should fail\n${result.stdout}`);
    assert.match(result.stderr, c.message, `${c.name}: message`);
    assert.match(result.stderr, /^Error: /, `${c.name}: a message, not a stack trace`);
    assert.doesNotMatch(result.stderr, /\n\s+at /, `${c.name}: no stack trace`);
    assert.doesNotMatch(result.stderr, /staging|\.part\b/, `${c.name}: no staging path`);
    assert.ok(!result.stderr.includes(data), `${c.name}: nothing under the data directory named`);
    assert.deepEqual(await storeState(data), before, `${c.name}: store unchanged`);
  }
  assert.equal(net.connections(), 0, 'nothing connected to the nbd server a disk named');
});

test('disks and filesystems of every honest flavour still import', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, {});
  // Zero-sized, compressed, zstd and snapshotted disks exercise header corners qemu-img writes.
  const zero = join(work, 'zero.qcow2');
  const compat = join(work, 'v2.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', zero, '0']);
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10,cluster_size=512', compat, '4M']);
  const base = await buildQcow2(work, { name: 'base.qcow2', seed: 'flavours' });
  const snap = join(work, 'snap.qcow2');
  await copyFile(base.path, snap);
  await run('qemu-img', ['snapshot', '-c', 'one', snap]);
  const zstd = join(work, 'zstd.qcow2');
  await run('qemu-img', ['convert', '-q', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd,extended_l2=on', base.path, zstd]);
  for (const disk of [zero, compat, snap, zstd]) await wharfOk(data, ['image', 'import', meta.path, disk]);
  const vm = await buildRawTarball(work, 'vm.tar', [{ name: './metadata.yaml', content: metadataYamlText() }, { name: './rootfs.img', content: await readFile(zstd) }]);
  await wharfOk(data, ['image', 'import', vm.path]);
  const list = JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])) as unknown[];
  assert.equal(list.length, 5);
});

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited with ${code}`))));
  });
}
