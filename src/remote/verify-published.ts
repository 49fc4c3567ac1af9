/**
 * Checking a served simplestreams index the way current LXD and Incus clients check what they
 * download (and more strictly than the 5.0/6.0 clients we can run): every item of the index, as
 * each client family sees it (views differ by User-Agent), is downloaded once and must have the
 * size and sha256 it is listed with; every `combined_*` hash of a metadata item, in both
 * vocabularies, must be the sha256 of that metadata file followed by the rootfs file it names
 * (that is the fingerprint clients compare against); every path must be relative and stay under
 * the base URL; fingerprints are 64 lowercase hex digits.
 */
import { createHash, type Hash } from 'node:crypto';
import { AppError, ErrorCodes } from '../errors.ts';
import { publishedClients, viewForUserAgent } from '../domain/simplestreams.ts';
import { fetchJson, openUrl, under, withoutSecrets, type FetchOptions } from './fetch.ts';

/** Which rootfs ftype each combined field of a metadata item hashes over. */
const combinedFields: Record<string, string> = {
  combined_sha256: 'root.tar.xz',
  combined_rootxz_sha256: 'root.tar.xz',
  combined_squashfs_sha256: 'squashfs',
  'combined_disk-kvm-img_sha256': 'disk-kvm.img',
  'combined_disk1-img_sha256': 'disk1.img',
  'combined_uefi1-img_sha256': 'uefi1.img',
};
const metadataFtypes = new Set(['lxd.tar.xz', 'incus.tar.xz']);

export interface PublishedReport {
  /** Files downloaded and hashed (each path once, whichever views list it). */
  files: number;
  bytes: number;
  /** Images offered, counted per client view. */
  images: Record<string, number>;
  problems: string[];
}

interface ListedFile {
  path: string;
  sha256: string;
  size: number;
  /** Where it is listed, for messages. */
  where: string;
}

interface CombinedCheck {
  metadata: string;
  rootfs: string;
  expected: string;
  where: string;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isFingerprint = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);

export async function verifyPublished(base: string, options: FetchOptions & { clients?: string[] } = {}): Promise<PublishedReport> {
  const problems: string[] = [];
  const files = new Map<string, ListedFile>();
  const combined = new Map<string, CombinedCheck>();
  const images: Record<string, number> = {};

  const listFile = (item: Json, where: string): ListedFile | undefined => {
    const path = typeof item.path === 'string' ? item.path : '';
    const { sha256, size } = item;
    if (!path) return void problems.push(`${where}: no path`);
    if (path.startsWith('/')) problems.push(`${where}: path "${path}" is absolute (clients join it to the base URL)`);
    try {
      under(base, path);
    } catch (err) {
      return void problems.push(`${where}: ${(err as Error).message}`);
    }
    if (!isFingerprint(sha256)) return void problems.push(`${where}: sha256 ${JSON.stringify(sha256)} is not 64 lowercase hex digits`);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return void problems.push(`${where}: size ${JSON.stringify(size)} is not a byte count`);
    const seen = files.get(path);
    if (seen && (seen.sha256 !== sha256 || seen.size !== size)) problems.push(`${where}: ${path} listed as ${sha256}/${size} here but ${seen.sha256}/${seen.size} at ${seen.where}`);
    if (!seen) files.set(path, { path, sha256, size, where });
    return seen ?? files.get(path);
  };

  for (const client of options.clients ?? Object.keys(publishedClients)) {
    const userAgent = publishedClients[client];
    if (!userAgent) throw new AppError(ErrorCodes.invalidArgument, `unknown client "${client}" (one of ${Object.keys(publishedClients).join(', ')})`);
    const view = { ...options, userAgent };
    const index = await fetchJson(under(base, 'streams/v1/index.json'), view);
    if (!isObject(index) || !isObject(index.index)) throw new AppError(ErrorCodes.upstreamCorrupt, `${withoutSecrets(base)}: streams/v1/index.json has no "index"`);
    const fingerprints = new Set<string>();
    for (const [name, entry] of Object.entries(index.index)) {
      if (!isObject(entry) || entry.datatype !== 'image-downloads' || typeof entry.path !== 'string') continue;
      let products: unknown;
      try {
        products = await fetchJson(under(base, entry.path), view);
      } catch (err) {
        problems.push(`[${client}] index entry ${name}: ${(err as Error).message}`);
        continue;
      }
      if (!isObject(products) || !isObject(products.products)) {
        problems.push(`[${client}] ${entry.path}: no "products"`);
        continue;
      }
      const listedIds = Array.isArray(entry.products) ? new Set(entry.products) : new Set();
      for (const [productKey, product] of Object.entries(products.products)) {
        if (!listedIds.has(productKey)) problems.push(`[${client}] product ${productKey} is missing from the index's products list`);
        if (!isObject(product) || !isObject(product.versions)) {
          problems.push(`[${client}] product ${productKey}: no versions`);
          continue;
        }
        for (const [version, entryVersion] of Object.entries(product.versions)) {
          if (!isObject(entryVersion) || !isObject(entryVersion.items)) continue;
          const items = Object.entries(entryVersion.items).filter((e): e is [string, Json] => isObject(e[1]));
          const byFtype = new Map<string, ListedFile>();
          for (const [itemName, item] of items) {
            const where = `[${client}] ${productKey} ${version} ${itemName}`;
            const listed = listFile(item, where);
            if (listed && typeof item.ftype === 'string') byFtype.set(item.ftype, listed);
          }
          for (const [itemName, item] of items) {
            const where = `[${client}] ${productKey} ${version} ${itemName}`;
            const ftype = String(item.ftype);
            if (ftype.endsWith('combined.tar.gz') && isFingerprint(item.sha256)) fingerprints.add(item.sha256);
            if (ftype === 'incus_combined.tar.gz' && item.combined_type === 'virtual-machine' && viewForUserAgent(userAgent) === 'incus-before-7.1') {
              problems.push(`${where}: a unified VM image, which this client reads as a container (combined_type came in Incus 7.1)`);
            }
            if (!metadataFtypes.has(ftype) || typeof item.path !== 'string') continue;
            for (const [field, rootFtype] of Object.entries(combinedFields)) {
              if (item[field] === undefined) continue;
              if (!isFingerprint(item[field])) {
                problems.push(`${where}: ${field} ${JSON.stringify(item[field])} is not 64 lowercase hex digits`);
                continue;
              }
              const rootfs = byFtype.get(rootFtype);
              if (!rootfs) {
                problems.push(`${where}: ${field} names a ${rootFtype} the version does not list`);
                continue;
              }
              // The same check listed by several views or both vocabularies is hashed once.
              const key = `${item.path}\0${rootfs.path}\0${item[field]}`;
              if (!combined.has(key)) combined.set(key, { metadata: item.path, rootfs: rootfs.path, expected: item[field], where: `${where} ${field}` });
              fingerprints.add(item[field]);
            }
          }
        }
      }
    }
    images[client] = fingerprints.size;
  }

  // Metadata files first, keeping their running hash, so each rootfs is read once for all the
  // combined hashes that cover it.
  const prefixes = new Map<string, Hash>();
  const metadataPaths = new Set([...combined.values()].map((c) => c.metadata));
  const ordered = [...files.values()].sort((a, b) => Number(metadataPaths.has(b.path)) - Number(metadataPaths.has(a.path)));
  let bytes = 0;
  let downloaded = 0;
  for (const file of ordered) {
    const checks = [...combined.values()].filter((c) => c.rootfs === file.path && prefixes.has(c.metadata));
    const hashes = checks.map((c) => ({ check: c, hash: prefixes.get(c.metadata)!.copy() }));
    const own = createHash('sha256');
    const prefix = metadataPaths.has(file.path) ? createHash('sha256') : undefined;
    let size = 0;
    try {
      const res = await openUrl(under(base, file.path), options);
      if (res.statusCode !== 200) {
        res.resume();
        problems.push(`${file.where}: ${file.path} answers HTTP ${res.statusCode}`);
        continue;
      }
      for await (const chunk of res as AsyncIterable<Buffer>) {
        size += chunk.length;
        own.update(chunk);
        prefix?.update(chunk);
        for (const h of hashes) h.hash.update(chunk);
      }
    } catch (err) {
      problems.push(`${file.where}: ${file.path}: ${(err as Error).message}`);
      continue;
    }
    downloaded++;
    bytes += size;
    if (size !== file.size) problems.push(`${file.where}: ${file.path} is ${size} bytes, listed as ${file.size}`);
    const sha256 = own.digest('hex');
    if (sha256 !== file.sha256) problems.push(`${file.where}: ${file.path} hashes to ${sha256}, listed as ${file.sha256}`);
    if (prefix) prefixes.set(file.path, prefix);
    for (const { check, hash } of hashes) {
      const got = hash.digest('hex');
      if (got !== check.expected) problems.push(`${check.where}: sha256(${check.metadata} + ${check.rootfs}) is ${got}, listed as ${check.expected}`);
    }
  }
  return { files: downloaded, bytes, images, problems: [...new Set(problems)] };
}
