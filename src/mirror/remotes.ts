/**
 * Remotes: named image servers, as in lxc. The public servers lxc predefines are built in and
 * cannot be removed; `NAME:IMAGE` names an image on one of them anywhere an image is named.
 */
import { AppError, ErrorCodes } from '../errors.ts';
import type { RemoteRecord, RemoteStore } from '../meta/store.ts';

export const builtinRemotes: readonly RemoteRecord[] = [
  { name: 'images', url: 'https://images.linuxcontainers.org', protocol: 'simplestreams', public: true, certificate: '', gpgKey: '' },
  { name: 'ubuntu', url: 'https://cloud-images.ubuntu.com/releases', protocol: 'simplestreams', public: true, certificate: '', gpgKey: '' },
  { name: 'ubuntu-daily', url: 'https://cloud-images.ubuntu.com/daily', protocol: 'simplestreams', public: true, certificate: '', gpgKey: '' },
];

export async function listRemotes(store: { meta: RemoteStore }): Promise<(RemoteRecord & { static: boolean })[]> {
  const stored = await store.meta.listRemotes();
  return [...builtinRemotes.map((r) => ({ ...r, static: true })), ...stored.map((r) => ({ ...r, static: false }))];
}

export async function getRemote(store: { meta: RemoteStore }, name: string): Promise<RemoteRecord> {
  const found = (await listRemotes(store)).find((r) => r.name === name);
  if (!found) throw new AppError(ErrorCodes.notFound, `Remote "${name}" not found`, { hint: 'See wharf remote list.' });
  return found;
}

export const remoteProtocols = ['simplestreams', 'lxd', 'oci'] as const;

/**
 * A new remote. `protocol` is simplestreams (the default), lxd, or oci (a registry the registry
 * caches: `wharf oci remote add`); a remote is public unless said otherwise when it speaks
 * simplestreams, and is not otherwise; no certificate means the system CA store.
 */
export async function addRemote(
  store: { meta: RemoteStore },
  options: { name: string; url: string; protocol?: string; public?: boolean; certificate?: string; gpgKey?: string },
): Promise<RemoteRecord> {
  const protocol = options.protocol ?? 'simplestreams';
  if (!(remoteProtocols as readonly string[]).includes(protocol)) {
    throw new AppError(ErrorCodes.invalidArgument, `Unknown protocol "${protocol}"`, { hint: `Use ${remoteProtocols.join(' or ')}.` });
  }
  const remote: RemoteRecord = {
    name: options.name,
    url: withoutTrailingSlash(options.url),
    protocol: protocol as RemoteRecord['protocol'],
    public: options.public ?? protocol === 'simplestreams',
    certificate: options.certificate ?? '',
    gpgKey: options.gpgKey ?? '',
  };
  if (remote.gpgKey && remote.protocol !== 'simplestreams') throw new AppError(ErrorCodes.invalidArgument, 'Only simplestreams indexes are signed: --gpg-key goes with a simplestreams remote');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(remote.name)) throw new AppError(ErrorCodes.invalidArgument, `Invalid remote name "${remote.name}"`);
  if ((await listRemotes(store)).some((r) => r.name === remote.name)) throw new AppError(ErrorCodes.conflict, `Remote "${remote.name}" already exists`);
  checkUrl(remote.url, remote.protocol);
  await store.meta.putRemote(remote);
  return remote;
}

export async function setRemoteUrl(store: { meta: RemoteStore }, name: string, url: string): Promise<void> {
  const remote = await getRemote(store, name);
  if (builtinRemotes.some((r) => r.name === name)) throw new AppError(ErrorCodes.invalidArgument, `Remote "${name}" is built in and cannot be changed`);
  checkUrl(withoutTrailingSlash(url), remote.protocol);
  await store.meta.putRemote({ ...remote, url: withoutTrailingSlash(url) });
}

const withoutTrailingSlash = (url: string) => url.replace(/\/+$/, '');

export async function removeRemote(store: { meta: RemoteStore }, name: string): Promise<void> {
  if (builtinRemotes.some((r) => r.name === name)) throw new AppError(ErrorCodes.invalidArgument, `Remote "${name}" is built in and cannot be removed`);
  await store.meta.removeRemote(name);
}

function checkUrl(url: string, protocol: string) {
  // A local directory holding a simplestreams tree is a remote too (air-gapped copies).
  if (protocol === 'simplestreams' && (url.startsWith('/') || url.startsWith('file://'))) return;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new AppError(ErrorCodes.invalidArgument, `Invalid URL "${url}"`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new AppError(ErrorCodes.invalidArgument, `Unsupported URL scheme in "${url}"`);
}

/** "REMOTE:IMAGE" -> its parts; a bare IMAGE is local. */
export function splitRef(ref: string): { remote: string | undefined; image: string } {
  const colon = ref.indexOf(':');
  return colon > 0 ? { remote: ref.slice(0, colon), image: ref.slice(colon + 1) } : { remote: undefined, image: ref };
}
