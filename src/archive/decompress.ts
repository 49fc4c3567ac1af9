/**
 * Streaming decompression for every compression LXD accepts. gzip uses Node's zlib; xz, lzma,
 * bzip2, lz4 and zstd use the system tools (xz-utils, bzip2, lz4, zstd), as LXD itself does,
 * which also moves that work onto another core.
 */
import { spawn } from 'node:child_process';
import { Duplex, PassThrough, Readable } from 'node:stream';
import { createGunzip, createGzip, createZstdCompress } from 'node:zlib';
import { invalidImage } from '../errors.ts';
import type { Compression } from '../domain/formats.ts';

const tools: Partial<Record<Compression, [string, string[]]>> = {
  xz: ['xz', ['--decompress', '--stdout', '--format=xz']],
  lzma: ['xz', ['--decompress', '--stdout', '--format=lzma']],
  bzip2: ['bzip2', ['--decompress', '--stdout']],
  lz4: ['lz4', ['-d', '-c']],
  // Not Node's zstd: it ends quietly on a cut frame and reads only the first of several frames.
  zstd: ['zstd', ['--decompress', '--stdout', '--quiet']],
};

export function decompressor(compression: Compression): Duplex {
  if (compression === 'none') return new PassThrough();
  if (compression === 'gzip') return createGunzip();
  const [command, args] = tools[compression]!;
  return spawnFilter(command, args, compression);
}

/**
 * A child process as a Duplex: stdin in, stdout out. Its output ends only once the process has
 * exited cleanly, so a consumer that reaches the end knows the tool accepted every byte (xz and
 * lz4 report a truncated or damaged file by their exit status, after their last output).
 */
function spawnFilter(command: string, args: string[], what: string): Duplex {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(invalidImage(err.code === 'ENOENT' ? `cannot read ${what} data: "${command}" is not installed` : `${command} failed: ${err.message}`)),
    );
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(invalidImage(`corrupt or truncated ${what} data (${command}: ${stderr.trim() || (signal ?? `exit ${code}`)})`));
    });
  });
  async function* output() {
    yield* child.stdout;
    await exited;
  }
  const duplex = Duplex.from({ writable: child.stdin, readable: Readable.from(output(), { objectMode: false }) });
  // A tool that fails while input is still being written must stop the writer too.
  exited.catch((err: Error) => duplex.destroy(err));
  // The consumer may stop early (or fail): make sure the process does not outlive the stream.
  duplex.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  // A child that exits early closes stdin under us; that error is reported through `exited`.
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
