/**
 * `image generate-metadata`: the metadata tarball for a rootfs built by hand, so it can be
 * imported as a split image (the "manually building an image" workflow of the LXD docs).
 */
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { stringify } from 'yaml';
import { AppError, ErrorCodes } from '../errors.ts';
import { canonicalArchitecture } from '../domain/architecture.ts';
import { serialFromDate } from '../domain/product.ts';
import type { Compression } from '../domain/formats.ts';
import { compressor } from '../archive/decompress.ts';

export interface GenerateMetadataOptions {
  os: string;
  release: string;
  architecture: string;
  variant?: string;
  description?: string;
  /** Unix seconds; now by default. */
  creationDate?: number;
  output: string;
}

const byExtension: [string, Compression][] = [
  ['.tar.xz', 'xz'],
  ['.tar.gz', 'gzip'],
  ['.tgz', 'gzip'],
  ['.tar.bz2', 'bzip2'],
  ['.tar.zst', 'zstd'],
  ['.tar.lz4', 'lz4'],
  ['.tar', 'none'],
];

export async function generateMetadata(options: GenerateMetadataOptions): Promise<{ path: string; yaml: string }> {
  const architecture = canonicalArchitecture(options.architecture);
  if (!architecture) throw new AppError(ErrorCodes.invalidArgument, `Unknown architecture "${options.architecture}"`);
  const compression = byExtension.find(([ext]) => options.output.endsWith(ext))?.[1];
  if (!compression) {
    throw new AppError(ErrorCodes.invalidArgument, `Cannot tell the compression of ${options.output}`, {
      hint: `Name it ${byExtension.map(([e]) => '*' + e).join(', ')}.`,
    });
  }
  const creationDate = options.creationDate ?? Math.floor(Date.now() / 1000);
  const variant = options.variant || 'default';
  const serial = serialFromDate(new Date(creationDate * 1000).toISOString());
  const yaml = stringify({
    architecture,
    creation_date: creationDate,
    properties: {
      architecture: options.architecture,
      os: options.os,
      release: options.release,
      variant,
      serial,
      description: options.description ?? `${options.os} ${options.release} ${options.architecture} (${variant}) (${serial})`,
    },
    templates: {},
  });

  const pack = tar.pack();
  pack.entry({ name: 'metadata.yaml', mtime: new Date(creationDate * 1000), mode: 0o644 }, yaml);
  pack.entry({ name: 'templates', type: 'directory', mtime: new Date(creationDate * 1000), mode: 0o755 });
  pack.finalize();
  const temp = `${options.output}.part`;
  try {
    await pipeline(pack, compressor(compression), createWriteStream(temp));
    await rename(temp, options.output);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  return { path: options.output, yaml };
}
