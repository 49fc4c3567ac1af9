/** An origin for mirror-mode tests (a tree exported by wharf, served over HTTPS by a fault server) and a mirror of it. */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { serve, tempDir, wharfOk } from './env.ts';
import { fetchRaw } from './http.ts';
import { startFaultServer, type FaultServer } from './fault-server.ts';

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export interface Listed {
  path: string;
  sha256: string;
  size: number;
  ftype: string;
}

/** Every item of a tree's products file. */
export async function itemsOf(tree: string): Promise<Listed[]> {
  const doc = JSON.parse(await readFile(join(tree, 'streams/v1/images.json'), 'utf8')) as {
    products: Record<string, { versions: Record<string, { items: Record<string, Listed> }> }>;
  };
  return Object.values(doc.products).flatMap((p) => Object.values(p.versions).flatMap((v) => Object.values(v.items)));
}

export async function origin(t: Parameters<typeof tempDir>[0], work: string, images: { os: string; padMiB: number }[]) {
  const source = join(work, 'source');
  for (const [i, image] of images.entries()) {
    const meta = await buildMetadataTarball(work, { name: `meta${i}.tar.xz`, properties: { os: image.os, release: '1', architecture: 'amd64' } });
    const root = await buildSquashfs(work, { name: `root${i}.squashfs`, seed: image.os, padMiB: image.padMiB });
    await wharfOk(source, ['image', 'import', meta.path, root.path, '--alias', image.os.toLowerCase()]);
  }
  const tree = join(work, 'tree');
  await wharfOk(source, ['tree', 'export', tree]);
  const identity = await selfsigned.generate([{ name: 'commonName', value: 'origin' }], { keyType: 'ec', extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }] });
  const certificate = join(work, 'origin.crt');
  await writeFile(certificate, identity.cert);
  const server = await startFaultServer(tree, { cert: identity.cert, key: identity.private });
  t.after(() => server.close());
  return { server, tree, certificate, items: await itemsOf(tree) };
}

export const squashfsOf = (items: Listed[]) => items.filter((i) => i.ftype === 'squashfs');
export const fetchedFrom = (server: FaultServer, path: string) => server.requests.filter((p) => p === path).length;

export async function mirrorOf(t: Parameters<typeof tempDir>[0], work: string, up: { server: FaultServer; certificate: string }, extra: Parameters<typeof serve>[2] = {}) {
  const data = join(work, 'mirror');
  const mirror = await serve(t, data, { mirrorOf: up.server.base, originCertificate: up.certificate, http: true, ...extra });
  return { data, mirror, get: (path: string, headers: Record<string, string> = {}) => fetchRaw(`${mirror.base}/${path}`, { ca: mirror.tls.cert, headers }) };
}

