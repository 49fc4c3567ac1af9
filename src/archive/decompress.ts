/**
 * Streaming decompression for every compression LXD accepts. gzip and zstd use Node's zlib;
 * xz, lzma, bzip2 and lz4 use the system tools (xz-utils, bzip2, lz4), as LXD itself does,
 * which also moves that work onto another core.
 */
import { spawn } from 'node:child_process';
import { Duplex, PassThrough } from 'node:stream';
import { createGunzip, createGzip, createZstdCompress, createZstdDecompress } from 'node:zlib';
import { invalidImage } from '../errors.ts';
import type { Compression } from '../domain/formats.ts';

const tools: Partial<Record<Compression, [string, string[]]>> = {
  xz: ['xz', ['--decompress', '--stdout', '--format=xz']],
  lzma: ['xz', ['--decompress', '--stdout', '--format=lzma']],
  bzip2: ['bzip2', ['--decompress', '--stdout']],
  lz4: ['lz4', ['-d', '-c']],
};

export function decompressor(compression: Compression): Duplex {
  if (compression === 'none') return new PassThrough();
  if (compression === 'gzip') return createGunzip();
  if (compression === 'zstd') return createZstdDecompress();
  const [command, args] = tools[compression]!;
  return spawnFilter(command, args, compression);
}

/** A child process as a Duplex: stdin in, stdout out, a failed exit becomes a stream error. */
function spawnFilter(command: string, args: string[], what: string): Duplex {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  const fail = (message: string) => duplex.destroy(invalidImage(message));
  child.on('error', (err: NodeJS.ErrnoException) =>
    fail(err.code === 'ENOENT' ? `cannot read ${what} data: "${command}" is not installed` : `${command} failed: ${err.message}`),
  );
  child.on('close', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM') fail(`corrupt or truncated ${what} data (${command}: ${stderr.trim() || `exit ${code}`})`);
  });
  // The consumer may stop early (or fail): make sure the process does not outlive the stream.
  duplex.on('close', () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
  // A child that exits early closes stdin under us; that error is reported through 'close' above.
  child.stdin.on('error', () => {});
  return duplex;
}

const compressTools: Partial<Record<Compression, [string, string[]]>> = {
  xz: ['xz', ['--compress', '--stdout', '-T0']],
  lzma: ['xz', ['--compress', '--stdout', '--format=lzma']],
  bzip2: ['bzip2', ['--compress', '--stdout']],
  lz4: ['lz4', ['-z', '-c']],
};

/** The reverse, for the few files wharf writes itself (generated metadata tarballs). */
export function compressor(compression: Compression): Duplex {
  if (compression === 'none') return new PassThrough();
  if (compression === 'gzip') return createGzip();
  if (compression === 'zstd') return createZstdCompress();
  const [command, args] = compressTools[compression]!;
  return spawnFilter(command, args, compression);
}
