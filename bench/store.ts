/**
 * A store of many small images, written through the core API (src/core/import.ts) rather than one
 * CLI process per image: 1,000 metadata tarballs with distinct properties sharing one tiny
 * squashfs. The layout imitates a real image server: 100 products (10 OSes x 10 releases) with
 * 10 dated versions each.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tar from 'tar-stream';
import { stringify } from 'yaml';
import { loadConfig } from '../src/config.ts';
import { openStore } from '../src/factory.ts';
import { silentLogger } from '../src/log.ts';
import { importImage } from '../src/core/import.ts';
import type { Store } from '../src/core/context.ts';
import { runOk } from './lib.ts';

const baseDate = Date.UTC(2026, 0, 1) / 1000;
const pad = (n: number) => String(n).padStart(2, '0');

/**
 * How images map to products: `versions`, 100 products of 10 versions each (product i mod 100,
 * version i div 100); `products`, every image (up to 1,000) a product of its own (the variant
 * takes i div 100), as a catalogue with one row per image.
 */
export type StoreLayout = 'versions' | 'products';

/** The properties of image number i. */
export function imageProperties(i: number, layout: StoreLayout = 'versions'): Record<string, string> {
  const os = `Benchos${i % 10}`;
  const release = String((Math.floor(i / 10) % 10) + 1);
  const version = layout === 'versions' ? Math.floor(i / 100) : 0;
  return {
    os,
    release,
    variant: layout === 'versions' ? 'default' : `v${Math.floor(i / 100)}`,
    architecture: 'amd64',
    description: `${os} ${release} amd64 (${i})`,
    serial: `2026${pad(1 + Math.floor(version / 28))}${pad(1 + (version % 28))}_${pad(i % 24)}:00`,
  };
}

/** An uncompressed metadata tarball holding just metadata.yaml. */
export async function metadataTar(i: number, layout: StoreLayout = 'versions'): Promise<Buffer> {
  const yaml = stringify({ architecture: 'x86_64', creation_date: baseDate + i * 3600, properties: imageProperties(i, layout) });
  const pack = tar.pack();
  pack.entry({ name: 'metadata.yaml', mtime: new Date(baseDate * 1000), uid: 0, gid: 0 }, yaml);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A real (tiny) squashfs, built once with mksquashfs. */
export async function tinySquashfs(dir: string): Promise<Buffer> {
  const tree = join(dir, 'tiny-tree');
  await mkdir(join(tree, 'etc'), { recursive: true });
  await writeFile(join(tree, 'etc', 'os-release'), 'NAME="Benchos"\n');
  const path = join(dir, 'tiny.squashfs');
  await runOk('mksquashfs', [tree, path, '-noappend', '-quiet', '-no-progress', '-all-root']);
  return readFile(path);
}

export async function openBenchStore(dataDir: string): Promise<Store> {
  return openStore(await loadConfig(dataDir, {}, {}), silentLogger);
}

export async function* chunksOf(buffer: Buffer): AsyncIterable<Uint8Array> {
  yield buffer;
}

/** Imports image number i (its metadata tarball plus the shared squashfs); returns the fingerprint. */
export async function addImage(store: Store, i: number, squashfs: Buffer, layout: StoreLayout = 'versions'): Promise<string> {
  const meta = await metadataTar(i, layout);
  const image = await importImage(store, {
    sources: [
      { name: `meta-${i}.tar`, chunks: chunksOf(meta) },
      { name: 'rootfs.squashfs', chunks: chunksOf(squashfs) },
    ],
  });
  return image.fingerprint;
}

/** Fills a new store with images 0..count-1 and returns it open. */
export async function buildStore(dataDir: string, count: number, squashfs: Buffer, layout: StoreLayout = 'versions'): Promise<Store> {
  const started = performance.now();
  const store = await openBenchStore(dataDir);
  for (let i = 0; i < count; i++) await addImage(store, i, squashfs, layout);
  console.log(`store: ${count} images written through the core API in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return store;
}
