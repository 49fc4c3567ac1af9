/**
 * The framing checks of rootfs tarballs, on real files made by xz, zstd and GNU tar: every
 * complete file passes however it is cut into chunks; every truncation, splice or trailing
 * garbage is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { framingCheck } from '../../src/archive/framing.ts';
import { isAppError } from '../../src/errors.ts';
import type { Compression } from '../../src/domain/formats.ts';

const work = mkdtempSync(join(tmpdir(), 'wharf-framing-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

/** Half compressible text, half noise, so blocks of every kind appear. */
function payload(seed: number, bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  let x = seed || 1;
  for (let i = 0; i < bytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = i % 4096 < 2048 ? 97 + (i % 7) : x >>> 24;
  }
  return out;
}

function compress(tool: string, args: string[], input: Buffer): Buffer {
  const file = join(work, `in-${Math.random().toString(16).slice(2)}`);
  writeFileSync(file, input);
  try {
    return execFileSync(tool, [...args, '--stdout', file], { maxBuffer: 64 << 20 });
  } finally {
    rmSync(file, { force: true });
  }
}

const input = payload(7, 600_000);
const xzHead = compress('xz', ['-1'], input.subarray(0, 1000));
const zstdHead = compress('zstd', ['-q', '-1'], input.subarray(0, 5000));
/** A real tree archived by GNU tar: a long name (a GNU 'L' record or a pax header), a directory, a link, sizes that are and are not whole blocks. */
function gnuTar(format: 'gnu' | 'pax'): Buffer {
  const tree = mkdtempSync(join(work, 'tree-'));
  const deep = join(tree, 'd'.repeat(60), 'e'.repeat(60));
  execFileSync('mkdir', ['-p', deep]);
  writeFileSync(join(deep, 'long-name-of-a-file-in-a-deep-directory'), input.subarray(0, 70_001));
  writeFileSync(join(tree, 'block'), input.subarray(0, 1024));
  writeFileSync(join(tree, 'empty'), '');
  writeFileSync(join(tree, 'caf\u00e9'), input.subarray(0, 3));
  execFileSync('ln', ['-s', 'block', join(tree, 'link')]);
  try {
    return execFileSync('tar', ['-C', tree, `--format=${format}`, '-cf', '-', '.'], { maxBuffer: 64 << 20 });
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}

/** The same archive with its first header's size written in GNU base-256, as tar does past 8 GiB. */
function base256Size(tarball: Buffer): Buffer {
  const out = Buffer.from(tarball);
  const size = parseInt(out.toString('latin1', 124, 136).replace(/\0.*$/, '').trim(), 8);
  out.fill(0, 124, 136);
  out[124] = 0x80;
  out.writeUInt32BE(size, 132);
  out.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += out[i]!;
  out.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return out;
}

/** Where a tar archive may be cut and still be whole: anywhere in its zero padding after the marker. */
function tarWholeAt(tarball: Buffer): number[] {
  let end = tarball.length;
  while (end > 0 && tarball[end - 1] === 0) end--;
  const firstZeroBlock = Math.ceil(end / 512) * 512;
  const lengths: number[] = [];
  for (let keep = firstZeroBlock + 1024; keep < tarball.length; keep += 512) lengths.push(keep);
  return lengths;
}

const gnuTarball = gnuTar('gnu');
const paxTarball = gnuTar('pax');
const base256Tarball = base256Size(gnuTarball);

/** `wholeAt`: lengths at which a cut leaves a complete, valid file (the end of a stream or frame). */
const samples: Record<string, { compression: Compression; bytes: Buffer; wholeAt?: number[] }> = {
  'xz, one block': { compression: 'xz', bytes: compress('xz', ['-1', '-T1'], input) },
  'xz, many blocks': { compression: 'xz', bytes: compress('xz', ['-1', '-T2', '--block-size=65536'], input) },
  'xz, no integrity check': { compression: 'xz', bytes: compress('xz', ['-1', '--check=none'], input) },
  'xz, sha256 check': { compression: 'xz', bytes: compress('xz', ['-1', '--check=sha256'], input) },
  'xz, two streams with padding between': {
    compression: 'xz',
    bytes: Buffer.concat([xzHead, Buffer.alloc(8), compress('xz', ['-1'], input.subarray(1000))]),
    wholeAt: [xzHead.length, xzHead.length + 4, xzHead.length + 8],
  },
  'zstd, with checksum': { compression: 'zstd', bytes: compress('zstd', ['-q', '-1', '--check'], input) },
  'zstd, without checksum': { compression: 'zstd', bytes: compress('zstd', ['-q', '-1', '--no-check'], input) },
  'zstd, two frames and a skippable one': {
    compression: 'zstd',
    bytes: Buffer.concat([zstdHead, Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]), compress('zstd', ['-q', '-19'], input.subarray(5000))]),
    wholeAt: [zstdHead.length, zstdHead.length + 11],
  },
  'tar, GNU format': { compression: 'none', bytes: gnuTarball, wholeAt: tarWholeAt(gnuTarball) },
  'tar, pax format': { compression: 'none', bytes: paxTarball, wholeAt: tarWholeAt(paxTarball) },
  'tar, a size in base-256': { compression: 'none', bytes: base256Tarball, wholeAt: tarWholeAt(base256Tarball) },
};

async function verdict(compression: Compression, bytes: Buffer, chunkSizes: number[] = [65536]): Promise<'ok' | string> {
  const check = framingCheck(compression, 'rootfs')!;
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = Math.max(1, chunkSizes[i % chunkSizes.length]!);
    check.update(bytes.subarray(at, at + size));
    at += size;
  }
  try {
    await check.finish(async (position, length) => bytes.subarray(position, position + length));
    return 'ok';
  } catch (err) {
    assert.ok(isAppError(err, 'invalid_image'), `not an invalid_image error: ${(err as Error).stack}`);
    return (err as Error).message;
  }
}

test('complete files pass, however they are cut into chunks', async () => {
  for (const [name, { compression, bytes }] of Object.entries(samples)) {
    assert.equal(await verdict(compression, bytes), 'ok', name);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 8 }), async (sizes) => {
        assert.equal(await verdict(compression, bytes, sizes), 'ok', name);
      }),
      { numRuns: 30 },
    );
  }
});

test('the real tools agree that the samples are whole', () => {
  for (const [name, { compression, bytes }] of Object.entries(samples)) {
    const file = join(work, 'sample');
    writeFileSync(file, bytes);
    if (compression === 'none') execFileSync('tar', ['-tf', file], { stdio: 'ignore' });
    else execFileSync(compression === 'xz' ? 'xz' : 'zstd', ['-t', '-q', file]);
    assert.ok(readFileSync(file).length > 0, name);
  }
});

test('every truncation is refused', async () => {
  for (const [name, { compression, bytes, wholeAt = [] }] of Object.entries(samples)) {
    for (const keep of wholeAt) assert.equal(await verdict(compression, bytes.subarray(0, keep)), 'ok', `${name}: its first part alone is a whole file`);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: bytes.length - 1 }).filter((keep) => !wholeAt.includes(keep)), async (keep) => {
        assert.notEqual(await verdict(compression, bytes.subarray(0, keep)), 'ok', `${name} cut to ${keep} of ${bytes.length} bytes`);
      }),
      { numRuns: 150 },
    );
    // The cuts most likely to fool a check: just before and inside the trailer.
    for (let cut = 1; cut <= 32; cut++) assert.notEqual(await verdict(compression, bytes.subarray(0, bytes.length - cut)), 'ok', `${name} minus ${cut}`);
  }
});

test('trailing garbage and spliced files are refused', async () => {
  for (const [name, { compression, bytes }] of Object.entries(samples)) {
    assert.notEqual(await verdict(compression, Buffer.concat([bytes, Buffer.from('garbage!')])), 'ok', `${name} + garbage`);
  }
  const a = samples['xz, many blocks']!.bytes;
  const b = compress('xz', ['-1', '-T2', '--block-size=65536'], payload(9, 900_000));
  assert.notEqual(await verdict('xz', Buffer.concat([a.subarray(0, a.length >> 1), b.subarray(b.length >> 1)])), 'ok', 'xz halves of two files');
  const z = samples['zstd, with checksum']!.bytes;
  assert.notEqual(await verdict('zstd', Buffer.concat([z, z.subarray(0, 100)])), 'ok', 'zstd with a cut second frame');
});

test('a damaged tar header, a lone zero block or a size reaching past the end is refused', async () => {
  const damaged = Buffer.from(gnuTarball);
  damaged[600] = damaged[600]! ^ 1; // inside the second header (the first entry is the directory '.')
  assert.match(await verdict('none', damaged), /damaged \(checksum\)/);
  const oneZeroBlock = Buffer.concat([gnuTarball.subarray(0, 512), Buffer.alloc(512), gnuTarball.subarray(512)]);
  assert.notEqual(await verdict('none', oneZeroBlock), 'ok', 'a zero block followed by entries');
  const grown = Buffer.from(gnuTarball);
  // The first regular file's size, grown past the end of the archive.
  let at = 0;
  while (gnuTarball[at + 156] !== 0x30) at += 512 + Math.ceil(parseInt(gnuTarball.toString('latin1', at + 124, at + 135), 8) / 512) * 512;
  grown.write('77777777777', at + 124, 'latin1');
  grown.fill(0x20, at + 148, at + 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += grown[at + i]!;
  grown.write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'latin1');
  assert.match(await verdict('none', grown), /cut short/);
  assert.match(await verdict('none', Buffer.alloc(10240)), /no entry/);
  assert.match(await verdict('none', Buffer.from('not a tar archive at all, but long enough to be a header? no'.repeat(20))), /damaged|no valid size/);
});

test('other compressions have no framing check (they are decompressed instead)', () => {
  for (const c of ['gzip', 'bzip2', 'lz4', 'lzma'] as const) assert.equal(framingCheck(c, 'x'), undefined);
});
