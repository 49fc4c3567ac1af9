/**
 * Reads what an import needs from an image tarball while it streams past: metadata.yaml, whether
 * it holds a container rootfs/ or a VM rootfs.img, and whether it is complete. Nothing is
 * extracted to disk and only metadata.yaml (at most 1 MiB) is kept in memory.
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { invalidImage } from '../errors.ts';
import { maxMetadataYamlBytes } from '../domain/metadata.ts';
import type { Compression } from '../domain/formats.ts';
import { decompressor } from './decompress.ts';

export interface TarballSummary {
  metadataYaml: string | undefined;
  hasRootfsDir: boolean;
  hasRootfsImg: boolean;
  entries: number;
}

/** Entry names may start with "./" or "/"; LXD treats them the same. */
function normalize(name: string): string {
  return name.replace(/^(\.\/|\/)+/, '');
}

/**
 * Returns a Writable to pipe the (compressed) tarball into, and a promise of its summary that
 * settles once the whole archive was read, or rejects if it is corrupt or cut short.
 */
export function tarballInspector(compression: Compression, what: string): { sink: Writable; summary: Promise<TarballSummary> } {
  const decompress = decompressor(compression);
  const extract = tar.extract();
  const summary: TarballSummary = { metadataYaml: undefined, hasRootfsDir: false, hasRootfsImg: false, entries: 0 };

  extract.on('entry', (header, stream, next) => {
    summary.entries++;
    // The whole archive's failure is reported once, by the pipeline; the entry's copy is noise.
    stream.on('error', () => {});
    const name = normalize(header.name);
    if (name === 'rootfs' || name.startsWith('rootfs/')) summary.hasRootfsDir = true;
    if (name === 'rootfs.img') summary.hasRootfsImg = true;
    if (name === 'metadata.yaml' && header.type === 'file' && summary.metadataYaml === undefined) {
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (data: unknown) => {
        const chunk = data as Buffer;
        size += chunk.length;
        if (size <= maxMetadataYamlBytes) chunks.push(chunk);
      });
      stream.on('end', () => {
        if (size > maxMetadataYamlBytes) {
          next(invalidImage(`${what}: metadata.yaml is larger than ${maxMetadataYamlBytes} bytes`));
          return;
        }
        summary.metadataYaml = Buffer.concat(chunks).toString('utf8');
        next();
      });
      return;
    }
    stream.on('end', () => next());
    stream.resume();
  });

  const done = pipeline(decompress, extract).then(
    () => {
      if (summary.entries === 0) throw invalidImage(`${what} is empty or not a tar archive`);
      return summary;
    },
    (err: Error) => {
      if ((err as { code?: string }).code === 'invalid_image') throw err;
      throw invalidImage(`${what} is corrupt or truncated: ${err.message}`);
    },
  );
  return { sink: decompress, summary: done };
}

/** Convenience for tests and small files: inspect a whole readable. */
export async function inspectTarball(source: NodeJS.ReadableStream, compression: Compression, what: string): Promise<TarballSummary> {
  const { sink, summary } = tarballInspector(compression, what);
  await Promise.all([pipeline(source, sink as Writable), summary]);
  return summary;
}
