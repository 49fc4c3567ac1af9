/**
 * Hostile files given to `wharf image import` (and hostile alias names): each is refused with a
 * clear error, a non-zero exit and the store exactly as it was, or, where LXD itself accepts such
 * a file, imported as the bytes it is, without wharf touching anything outside its data dir.
 *
 * wharf never extracts an image: it reads the tar stream for metadata.yaml and the rootfs entries
 * and stores the bytes. Odd entries inside a rootfs (absolute or `../` names, symlinks and hard
 * links pointing anywhere, device nodes, FIFOs, PAX or GNU long names) are therefore accepted, as
 * LXD accepts them: real root filesystems are full of links and device nodes, and the client that
 * unpacks (LXD/Incus with GNU tar) strips leading `/` and `../` and unpacks into the image's own
 * volume. What wharf itself reads must be honest: metadata.yaml must be a regular file, `rootfs`
 * a directory, the archive complete and its compression intact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { buildSquashfs } from '../fixtures/images.ts';
import {
  allCompressions,
  compress,
  compressionExtension,
  flipped,
  gnuLongName,
  lyingSizeHeader,
  metadataYaml,
  packTar,
  pseudoRandom,
  unifiedEntries,
  type TarEntry,
} from '../fixtures/hostile.ts';
import { fingerprintFrom, tempDir, wharf, wharfOk, type CliResult } from '../helpers/env.ts';
import { filesUnder, storeState } from '../helpers/store-state.ts';

/** The store's files only (cheap, for checks after every case; the CLI views are compared per group). */
async function blobFiles(data: string) {
  return { files: await filesUnder(join(data, 'blobs')), staging: await filesUnder(join(data, 'blobs', 'staging')) };
}

function assertCleanFailure(result: CliResult, message: RegExp, what: string) {
  assert.notEqual(result.code, 0, `${what}: should fail\n${result.stdout}`);
  assert.match(result.stderr, message, `${what}: message`);
  assert.match(result.stderr, /^Error: /, `${what}: a message, not a stack trace`);
  assert.doesNotMatch(result.stderr, /\n\s+at /, `${what}: no stack trace`);
}

/** Runs jobs two at a time (the machine has two cores). */
async function inPairs<T>(items: T[], job: (item: T) => Promise<void>) {
  for (let i = 0; i < items.length; i += 2) await Promise.all(items.slice(i, i + 2).map(job));
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('tar entries that point outside the image: accepted where LXD accepts them, never followed', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const files = join(work, 'files');
  const outside = join(work, 'outside');
  await mkdir(files);
  await mkdir(outside);
  const target = join(outside, 'target');
  await writeFile(target, 'untouched\n');
  const passwdBefore = sha256(await readFile('/etc/passwd'));
  const good = join(files, 'good.tar.gz');
  await writeFile(good, await compress(await packTar(unifiedEntries({ seed: 'good' })), 'gzip'));
  await wharfOk(data, ['image', 'import', good, '--alias', 'good']);
  const before = await storeState(data);
  const workBefore = await filesUnder(work);
  const up = '../'.repeat(30);

  const accepted: { name: string; entries: TarEntry[] }[] = [
    {
      name: 'dotdot',
      entries: unifiedEntries({
        seed: 'dotdot',
        extra: [
          { kind: 'file', name: `rootfs/${up}${outside.slice(1)}/dotdot`, content: 'x' },
          { kind: 'file', name: `${up}${outside.slice(1)}/dotdot2`, content: 'x' },
        ],
      }),
    },
    { name: 'absolute', entries: unifiedEntries({ seed: 'absolute', extra: [{ kind: 'file', name: `${outside}/absolute`, content: 'x' }] }) },
    {
      name: 'symlinks',
      entries: unifiedEntries({
        seed: 'symlinks',
        extra: [
          { kind: 'symlink', name: 'rootfs/etc/passwd', target: '/etc/passwd' },
          { kind: 'symlink', name: 'rootfs/out', target: outside },
          // The classic: a symlink, then a file "inside" it.
          { kind: 'file', name: 'rootfs/out/target', content: 'overwritten\n' },
          { kind: 'file', name: 'rootfs/etc/passwd', content: 'root::0:0::/:/bin/sh\n' },
        ],
      }),
    },
    {
      name: 'hardlinks',
      entries: unifiedEntries({
        seed: 'hardlinks',
        extra: [
          { kind: 'link', name: 'rootfs/hl-passwd', target: '/etc/passwd' },
          { kind: 'link', name: 'rootfs/hl-target', target: target },
          { kind: 'link', name: 'rootfs/hl-inside', target: 'rootfs/etc/hostname' },
        ],
      }),
    },
    {
      name: 'devices',
      entries: unifiedEntries({
        seed: 'devices',
        extra: [
          { kind: 'character-device', name: 'rootfs/dev-null', major: 1, minor: 3 },
          { kind: 'block-device', name: 'rootfs/dev-sda', major: 8, minor: 0 },
          { kind: 'character-device', name: `${outside}/device`, major: 1, minor: 3 },
          { kind: 'fifo', name: 'rootfs/fifo' },
          { kind: 'fifo', name: `${outside}/fifo` },
        ],
      }),
    },
    {
      name: 'pax',
      entries: unifiedEntries({
        seed: 'pax',
        extra: [
          { kind: 'file', name: 'rootfs/p1', content: 'x', pax: { path: `rootfs/${up}${outside.slice(1)}/pax` } },
          { kind: 'file', name: 'rootfs/p2', content: 'x', pax: { path: 'rootfs/new\nline' } },
          { kind: 'file', name: 'rootfs/p3', content: 'x', pax: { path: `rootfs/ünï/${'π'.repeat(120)}` } },
          { kind: 'file', name: 'rootfs/p4', content: 'x', pax: { path: `${outside}/pax-absolute`, linkpath: '/etc/passwd' } },
        ],
      }),
    },
    {
      name: 'gnu-long-names',
      entries: unifiedEntries({
        seed: 'gnu',
        extra: [gnuLongName(`rootfs/${'d'.repeat(150)}/${'f'.repeat(150)}`, Buffer.from('x')), gnuLongName(`${up}${outside.slice(1)}/gnu-long`, Buffer.from('x'))],
      }),
    },
    {
      // Both GNU tar and wharf resolve the PAX and GNU long names: this metadata.yaml is real.
      name: 'metadata.yaml by PAX and GNU long name',
      entries: [
        { kind: 'file', name: 'decoy', content: metadataYaml({ properties: { serial: 'pax-meta' } }), pax: { path: 'metadata.yaml' } },
        gnuLongName(`${'./'.repeat(80)}rootfs/etc/hostname`, Buffer.from('x')),
      ],
    },
  ];
  await inPairs(accepted, async (c) => {
    const file = join(files, `${c.name.replaceAll(' ', '-')}.tar.xz`);
    const bytes = await compress(await packTar(c.entries), 'xz');
    await writeFile(file, bytes);
    const own = join(work, `data-${c.name.replaceAll(' ', '-')}`);
    const result = await wharf(own, ['image', 'import', file]);
    assert.equal(result.code, 0, `${c.name}: accepted\n${result.stderr}`);
    assert.equal(fingerprintFrom(result.stdout), sha256(bytes), `${c.name}: stored as the bytes it is`);
    const [image] = JSON.parse(await wharfOk(own, ['image', 'list', '--format', 'json'])) as { type: string }[];
    assert.equal(image?.type, 'container', c.name);
  });

  const refused: { name: string; entries: TarEntry[]; message: RegExp }[] = [
    {
      name: 'metadata.yaml is a symlink to /etc/passwd',
      entries: [{ kind: 'symlink', name: 'metadata.yaml', target: '/etc/passwd' }, ...unifiedEntries().slice(1)],
      message: /has no metadata\.yaml/,
    },
    {
      name: 'metadata.yaml is a hard link to /etc/passwd',
      entries: [{ kind: 'link', name: 'metadata.yaml', target: '/etc/passwd' }, ...unifiedEntries().slice(1)],
      message: /has no metadata\.yaml/,
    },
    {
      name: 'metadata.yaml is a device',
      entries: [{ kind: 'character-device', name: 'metadata.yaml', major: 1, minor: 5 }, ...unifiedEntries().slice(1)],
      message: /has no metadata\.yaml/,
    },
    {
      // A client would unpack rootfs as a link to the host's root directory.
      name: 'rootfs is a symlink to /',
      entries: [unifiedEntries()[0]!, { kind: 'symlink', name: 'rootfs', target: '/' }],
      message: /rootfs/,
    },
    {
      name: 'rootfs is a symlink, then entries through it',
      entries: [unifiedEntries()[0]!, { kind: 'symlink', name: 'rootfs', target: outside }, { kind: 'file', name: 'rootfs/target', content: 'overwritten\n' }],
      message: /rootfs/,
    },
    {
      name: 'a huge declared size with short data',
      entries: [...unifiedEntries({ seed: 'huge' }), lyingSizeHeader('rootfs/huge', 2 ** 40, Buffer.from('short'))],
      message: /corrupt or truncated/,
    },
    {
      name: 'a declared size one block longer than the data',
      entries: [...unifiedEntries({ seed: 'lie' }), lyingSizeHeader('rootfs/lie', 1024, Buffer.alloc(512, 1))],
      message: /corrupt or truncated/,
    },
    {
      name: 'metadata.yaml declares 1 TiB',
      entries: [lyingSizeHeader('metadata.yaml', 2 ** 40, Buffer.from(metadataYaml()))],
      message: /corrupt or truncated|larger than/,
    },
  ];
  for (const c of refused) {
    const file = join(files, `refused-${refused.indexOf(c)}.tar.gz`);
    await writeFile(file, await compress(await packTar(c.entries), 'gzip'));
    assertCleanFailure(await wharf(data, ['image', 'import', file]), c.message, c.name);
    assert.deepEqual(await blobFiles(data), { files: before.files, staging: [] }, `${c.name}: store unchanged`);
  }
  assert.deepEqual(await storeState(data), before, 'store unchanged');

  // Nothing was written outside the data dirs: no entry was ever extracted or followed.
  assert.deepEqual(await filesUnder(outside), ['target']);
  assert.equal(await readFile(target, 'utf8'), 'untouched\n');
  assert.equal(sha256(await readFile('/etc/passwd')), passwdBefore);
  const created = (await filesUnder(work)).filter((f) => !workBefore.includes(f) && !/^(data|data-[^/]+|files)\//.test(f));
  assert.deepEqual(created, [], 'no file outside the data dirs');
  await assert.rejects(stat(join(process.cwd(), 'evil')), { code: 'ENOENT' });
});

test('hostile metadata.yaml is refused; odd but valid metadata is kept exactly', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const good = join(work, 'good.tar.gz');
  await writeFile(good, await compress(await packTar(unifiedEntries({ seed: 'good' })), 'gzip'));
  await wharfOk(data, ['image', 'import', good]);
  const before = await storeState(data);

  const laughs = ['lol: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 10; i++) laughs.push(`l${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(',')}]`);
  const bomb = `architecture: x86_64\ncreation_date: 1763798520\n${laughs.join('\n')}\nproperties:\n  description: *a9\n`;
  const deep = `architecture: x86_64\ncreation_date: 1763798520\nproperties:\n  x: ${'['.repeat(20000)}${']'.repeat(20000)}\n`;
  const deepMaps = `architecture: x86_64\ncreation_date: 1763798520\nextra: ${'{a: '.repeat(5000)}1${'}'.repeat(5000)}\n`;
  const big = metadataYaml({ properties: { description: 'x'.repeat(1024 * 1024) } });
  const nonUtf8 = Buffer.from(metadataYaml({ properties: { description: '@@' } }));
  const at = nonUtf8.indexOf('@@');
  nonUtf8[at] = 0xff;
  nonUtf8[at + 1] = 0xfe;

  const cases: { name: string; yaml: string | Buffer; message: RegExp }[] = [
    { name: 'billion laughs', yaml: bomb, message: /metadata\.yaml is not valid YAML/ },
    { name: 'deeply nested lists', yaml: deep, message: /metadata\.yaml (is not valid YAML|: properties\.x must be a plain value)/ },
    // Unknown keys are ignored by LXD, but they must still be parsed without exhausting the stack.
    { name: 'deeply nested maps', yaml: deepMaps, message: /metadata\.yaml is not valid YAML/ },
    { name: 'over 1 MiB', yaml: big, message: /metadata\.yaml is larger than 1048576 bytes/ },
    // LXD's YAML decoder refuses invalid UTF-8; wharf must not publish what clients refuse.
    { name: 'non-UTF-8 bytes', yaml: nonUtf8, message: /UTF-8/ },
    { name: 'a list', yaml: '- architecture: x86_64\n- creation_date: 1\n', message: /must be a mapping/ },
    { name: 'a scalar', yaml: 'just a string\n', message: /must be a mapping/ },
    { name: 'empty', yaml: '', message: /must be a mapping/ },
    { name: 'architecture is a list', yaml: metadataYaml({ architecture: ['x86_64'] }), message: /architecture must be a string/ },
    { name: 'creation_date is text', yaml: metadataYaml({ creation_date: 'yesterday' }), message: /creation_date must be a Unix timestamp/ },
    { name: 'nested property', yaml: metadataYaml().replace('properties:\n', 'properties:\n  nested: {a: 1}\n'), message: /properties\.nested must be a plain value/ },
    { name: 'templates is a list', yaml: metadataYaml({ templates: ['/etc/hostname'] }), message: /templates must be a mapping/ },
    { name: 'template "when" is a string', yaml: metadataYaml({ templates: { '/etc/hostname': { when: 'create', template: 'h.tpl' } } }), message: /"when" must be a list of strings/ },
    { name: 'template names no file', yaml: metadataYaml({ templates: { '/etc/hostname': { when: ['create'], template: 5 } } }), message: /names no template file/ },
    { name: 'template is a scalar', yaml: metadataYaml({ templates: { '/etc/hostname': 'h.tpl' } }), message: /template \/etc\/hostname must be a mapping/ },
  ];
  for (const c of cases) {
    const file = join(work, `yaml-${cases.indexOf(c)}.tar.gz`);
    await writeFile(file, await compress(await packTar(unifiedEntries({ yaml: c.yaml, seed: c.name })), 'gzip'));
    assertCleanFailure(await wharf(data, ['image', 'import', file]), c.message, c.name);
    assert.deepEqual(await blobFiles(data), { files: before.files, staging: [] }, `${c.name}: store unchanged`);
  }
  assert.deepEqual(await storeState(data), before, 'store unchanged');

  // Unicode, newlines and odd template fields are valid: imported, and shown back exactly.
  const properties = {
    description: 'first line\nsecond line\ttab ✓ 日本語 🐳 "quoted" \\ back',
    'ключ': 'значение',
    'key with spaces': '  padded  ',
    'yaml: tricky': '- not a list\n? not a key',
    empty: '',
  };
  const templates = {
    '/etc/../../outside': { when: ['create', 'copy', 'nonsense'], template: '../../escape.tpl', frobnicate: true, properties: { n: '1' } },
    '/etc/hostname': { when: [], template: 'hostname.tpl', create_only: 'yes', uid: 5, mode: '4777' },
  };
  const oddFile = join(work, 'odd.tar.gz');
  await writeFile(oddFile, await compress(await packTar(unifiedEntries({ yaml: metadataYaml({ properties, templates }), seed: 'odd' })), 'gzip'));
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', oddFile]));
  const listed = (JSON.parse(await wharfOk(data, ['image', 'list', '--format', 'json'])) as { fingerprint: string; properties: Record<string, string> }[]).find(
    (i) => i.fingerprint === fp,
  );
  assert.deepEqual(listed?.properties, { ...properties, os: 'Hostile', release: '1', variant: 'default', architecture: 'amd64' });
  assert.match(await wharfOk(data, ['image', 'info', fp.slice(0, 12)]), /Hostile/);
});

test('every compression, cut short or with a flipped byte, is refused (unified and split)', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const scratch = join(work, 'intact');
  const squashfs = await buildSquashfs(work, { seed: 'hostile-squashfs' });
  const base = join(work, 'base.tar.gz');
  await writeFile(base, await compress(await packTar(unifiedEntries({ seed: 'base' })), 'gzip'));
  await wharfOk(data, ['image', 'import', base]);
  const before = await storeState(data);

  type Case = { name: string; args: string[]; message: RegExp };
  const cases: Case[] = [];
  const intact: string[][] = [];
  const damaged = /corrupt or truncated|is empty or not a tar archive|is not an image file/;
  for (const compression of allCompressions) {
    const firstYaml = { unified: metadataYaml({ properties: { serial: `u-${compression}` } }), metadata: metadataYaml({ properties: { serial: `m-${compression}` } }) };
    const unified = await packTar(unifiedEntries({ yaml: firstYaml.unified, seed: `u-${compression}`, padBytes: 48 * 1024 }));
    const meta = await packTar([
      { kind: 'file', name: 'metadata.yaml', content: firstYaml.metadata },
      { kind: 'directory', name: 'templates' },
      { kind: 'file', name: 'templates/big.tpl', content: pseudoRandom(16 * 1024, `m-${compression}`) },
    ]);
    for (const [kind, tarball] of [
      ['unified', unified],
      ['metadata', meta],
    ] as const) {
      const bytes = await compress(tarball, compression);
      const name = (suffix: string) => join(work, `${kind}-${suffix}${compressionExtension[compression]}`);
      const args = (path: string) => (kind === 'unified' ? [path] : [path, squashfs.path]);
      await writeFile(name('intact'), bytes);
      intact.push(args(name('intact')));
      // Cut near the start, in the middle, and just before the end (the compressed stream's
      // trailer: footer, checksum). An uncompressed tar is cut inside its entries instead: its
      // trailing zero blocks carry nothing, and a cut on a block edge is a shorter valid archive.
      const cuts =
        compression === 'none'
          ? [0.1, 0.6, 0.95].map((f) => Math.floor((bytes.length - 1024) * f) | 1)
          : [Math.floor(bytes.length * 0.1), Math.floor(bytes.length * 0.6), bytes.length - 1];
      for (const cut of cuts) {
        await writeFile(name(`cut${cut}`), bytes.subarray(0, cut));
        cases.push({ name: `${kind} ${compression} cut at ${cut}/${bytes.length}`, args: args(name(`cut${cut}`)), message: damaged });
      }
      // Every compressed format here checks its data (gzip CRC32, xz CRC64, bzip2 block CRC, zstd
      // and lz4 content checksums; lzma_alone has none, but a flip in the middle derails its
      // decoder). A tar only checksums its headers: flip a byte in the second entry's header.
      const at = compression === 'none' ? 512 + Math.ceil(Buffer.byteLength(firstYaml[kind]) / 512) * 512 + 148 : bytes.length >> 1;
      await writeFile(name(`flip${at}`), flipped(bytes, at));
      cases.push({ name: `${kind} ${compression} flipped byte at ${at}/${bytes.length}`, args: args(name(`flip${at}`)), message: damaged });
    }
  }

  // The intact files import (so the damage is what gets them refused).
  await inPairs(intact, async (args) => {
    const result = await wharf(scratch, ['image', 'import', ...args]);
    assert.equal(result.code, 0, `intact ${args[0]}: ${result.stderr}`);
  });

  const failures: string[] = [];
  await inPairs(cases, async (c) => {
    const result = await wharf(data, ['image', 'import', ...c.args]);
    try {
      assertCleanFailure(result, c.message, c.name);
      // The message says which file, in one line (not a decompressor's paragraph of advice).
      const message = result.stderr.split('\n').find((l) => l.startsWith('Error: ')) ?? '';
      assert.ok(message.includes(basename(c.args[0]!)), `${c.name}: names the file`);
      assert.ok(result.stderr.trim().split('\n').length <= 2, `${c.name}: one line (and a hint)`);
    } catch {
      failures.push(`${c.name}: exit ${result.code}, ${result.stderr.trim() || result.stdout.trim()}`);
    }
  });
  assert.deepEqual(failures, [], `damaged files that were not refused cleanly:\n${failures.join('\n')}`);
  assert.deepEqual(await storeState(data), before, 'store unchanged');
  assert.deepEqual(await filesUnder(join(data, 'blobs', 'staging')), []);
});

test('hostile alias names: refused everywhere with the store unchanged, or usable everywhere', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const first = join(work, 'first.tar.gz');
  const second = join(work, 'second.tar.gz');
  await writeFile(first, await compress(await packTar(unifiedEntries({ seed: 'alias-1' })), 'gzip'));
  await writeFile(second, await compress(await packTar(unifiedEntries({ seed: 'alias-2' })), 'gzip'));
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', first, '--alias', 'plain']));
  const before = await storeState(data);

  const refused: [string, RegExp][] = [
    ['a'.repeat(300), /Invalid alias name/],
    ['a'.repeat(256), /Invalid alias name/],
    ['/leading', /Invalid alias name/],
    ['trailing/', /Invalid alias name/],
    ['with space', /Invalid alias name/],
    [' ', /Invalid alias name/],
    ['tab\there', /Invalid alias name/],
    ['new\nline', /Invalid alias name/],
    ['a,b', /Invalid alias name/],
    ['a:b', /Invalid alias name/],
    ['', /Invalid alias name/],
    ['\u00a0nbsp', /Invalid alias name/],
    ['0123456789abcdef'.repeat(4), /looks like a fingerprint/],
  ];
  const jobs = [
    ...refused.map(([name, message]) => ({ args: ['image', 'alias', 'create', name, fp], message })),
    // The same check guards imports and renames; a few names each show it is applied there too.
    ...refused.filter((_, i) => i % 2 === 0).map(([name, message]) => ({ args: ['image', 'import', second, '--alias', name], message })),
    ...[refused[3]!, refused[8]!, refused[12]!].map(([name, message]) => ({ args: ['image', 'alias', 'rename', 'plain', name], message })),
  ];
  await inPairs(jobs, async ({ args, message }) => assertCleanFailure(await wharf(data, args), message, JSON.stringify(args)));
  assert.deepEqual(await storeState(data), before, 'store unchanged');

  // Names LXD accepts work end to end: created, resolved, listed, renamed, deleted.
  const accepted = ['a'.repeat(255), 'debian/12/cloud', '100%', '%2e%2e', 'ünïcödé/日本', '🐳', 'dots..in..name'];
  const fp2 = fingerprintFrom(await wharfOk(data, ['image', 'import', second, ...accepted.slice(0, 3).flatMap((a) => ['--alias', a])]));
  for (const name of accepted.slice(3)) await wharfOk(data, ['image', 'alias', 'create', name, fp]);
  const aliases = JSON.parse(await wharfOk(data, ['image', 'alias', 'list', '--format', 'json'])) as { name: string }[];
  assert.deepEqual(aliases.map((a) => a.name).sort(), [...accepted, 'plain'].sort());
  for (const [name, target] of [['%2e%2e', fp], ['ünïcödé/日本', fp], [accepted[0]!, fp2]] as const) {
    assert.match(await wharfOk(data, ['image', 'info', name]), new RegExp(`Fingerprint: ${target}`), name);
  }
  await wharfOk(data, ['image', 'alias', 'rename', '🐳', '🐋']);
  await wharfOk(data, ['image', 'alias', 'delete', '🐋']);
  assert.ok(!(await wharfOk(data, ['image', 'alias', 'list', '--format', 'json'])).includes('🐳'));
});

test("a split image's rootfs tarball cut short, padded or spliced is refused (xz and zstd by their framing)", async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = join(work, 'meta.tar.gz');
  await writeFile(meta, await compress(await packTar([{ kind: 'file', name: 'metadata.yaml', content: metadataYaml({ properties: { serial: 'split-rootfs' } }) }]), 'gzip'));
  const rootfsEntries = (seed: string): TarEntry[] => [
    { kind: 'directory', name: 'rootfs' },
    { kind: 'file', name: 'rootfs/etc/hostname', content: 'split\n' },
    // Over 1 MiB compressed: the xz check then reads block headers back from the staged file.
    { kind: 'file', name: 'rootfs/padding.bin', content: pseudoRandom(1280 * 1024, seed) },
  ];
  await wharfOk(data, ['image', 'import', meta, await (async () => {
    const p = join(work, 'base.tar.gz');
    await writeFile(p, await compress(await packTar(rootfsEntries('base')), 'gzip'));
    return p;
  })()]);
  const before = await storeState(data);

  const cases: { name: string; path: string }[] = [];
  const intact: string[] = [];
  for (const compression of allCompressions.filter((c) => c !== 'none')) {
    const bytes = await compress(await packTar(rootfsEntries(compression)), compression);
    const file = async (suffix: string, content: Buffer) => {
      const path = join(work, `rootfs-${suffix}${compressionExtension[compression]}`);
      await writeFile(path, content);
      return path;
    };
    intact.push(await file('intact', bytes));
    for (const cut of [Math.floor(bytes.length * 0.1), Math.floor(bytes.length * 0.6), bytes.length - 1]) {
      cases.push({ name: `${compression} cut at ${cut}/${bytes.length}`, path: await file(`cut${cut}`, bytes.subarray(0, cut)) });
    }
    // A whole file with the start of another after it: what a resumed download gone wrong leaves.
    cases.push({ name: `${compression} followed by half of another`, path: await file('spliced', Buffer.concat([bytes, bytes.subarray(0, bytes.length >> 1)])) });
    cases.push({ name: `${compression} with garbage appended`, path: await file('garbage', Buffer.concat([bytes, Buffer.from('garbage!')])) });
  }
  for (const path of intact) {
    const result = await wharf(join(work, 'scratch'), ['image', 'import', meta, path]);
    assert.equal(result.code, 0, `intact ${path}: ${result.stderr}`);
  }
  const failures: string[] = [];
  await inPairs(cases, async (c) => {
    const result = await wharf(data, ['image', 'import', meta, c.path]);
    try {
      assertCleanFailure(result, /corrupt or truncated|not a complete (xz|zstd) file|end-of-archive/, c.name);
    } catch {
      failures.push(`${c.name}: exit ${result.code}, ${result.stderr.trim() || result.stdout.trim()}`);
    }
  });
  assert.deepEqual(failures, [], `damaged rootfs tarballs that were not refused cleanly:\n${failures.join('\n')}`);
  assert.deepEqual(await storeState(data), before, 'store unchanged');
});
