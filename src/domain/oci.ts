/**
 * The OCI Distribution Specification's rules (issue 27), as pure functions: repository names,
 * tags and digests as the spec's grammar allows them, the media types of manifests, what a
 * manifest refers to (its config, layers, an index's children, its subject), and the spec's error
 * codes with the catalogue code (src/errors.ts) each answers as. http/oci/ speaks the protocol.
 */
import { createHash } from 'node:crypto';
import { AppError, ErrorCodes, type ErrorCode } from '../errors.ts';
import { globsMatch } from './push-token.ts';

/** The spec's `<name>`: path components of lowercase alphanumerics and separators. */
const nameComponent = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const namePattern = new RegExp(`^${nameComponent}(?:/${nameComponent})*$`);
const tagPattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** The longest name accepted: the spec asks for 255 at least (host and name together, in practice). */
export const maxNameLength = 255;
/** Manifests larger than this are refused (the spec's suggested minimum to accept is 4 MiB). */
export const maxManifestBytes = 4 * 1024 * 1024;

export const manifestMediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

/** The spec's error codes, each with the catalogue code (and so the HTTP status) it is answered with. */
export const ociErrorCodes = {
  BLOB_UNKNOWN: ErrorCodes.notFound,
  BLOB_UPLOAD_INVALID: ErrorCodes.invalidArgument,
  BLOB_UPLOAD_UNKNOWN: ErrorCodes.notFound,
  DIGEST_INVALID: ErrorCodes.invalidArgument,
  MANIFEST_BLOB_UNKNOWN: ErrorCodes.invalidArgument,
  MANIFEST_INVALID: ErrorCodes.invalidArgument,
  MANIFEST_UNKNOWN: ErrorCodes.notFound,
  NAME_INVALID: ErrorCodes.invalidArgument,
  NAME_UNKNOWN: ErrorCodes.notFound,
  SIZE_INVALID: ErrorCodes.invalidArgument,
  UNAUTHORIZED: ErrorCodes.unauthorized,
  DENIED: ErrorCodes.forbidden,
  UNSUPPORTED: ErrorCodes.notImplemented,
  RANGE_NOT_SATISFIABLE: ErrorCodes.rangeNotSatisfiable,
} as const satisfies Record<string, ErrorCode>;

export type OciErrorCode = keyof typeof ociErrorCodes;

/** An AppError that the registry answers in the spec's envelope with `code`. */
export class OciError extends AppError {
  readonly ociCode: OciErrorCode;
  /** UNAUTHORIZED: the scope the request needs (`repository:NAME:pull,push`), which the challenge names for the client to ask a token of. */
  readonly scope: string | undefined;

  constructor(ociCode: OciErrorCode, message: string, options: { scope?: string } = {}) {
    super(ociErrorCodes[ociCode], message);
    this.ociCode = ociCode;
    this.scope = options.scope;
  }
}

export function checkRepository(name: string): string {
  if (!isRepositoryName(name)) throw new OciError('NAME_INVALID', `invalid repository name: ${JSON.stringify(name.slice(0, 80))}`);
  return name;
}

export const isTag = (reference: string) => tagPattern.test(reference);
export const isRepositoryName = (name: string) => name.length <= maxNameLength && namePattern.test(name);

/** Whether anyone may pull the repository: it matches none of `registry_private`'s globs. */
export const isPublicRepository = (privateGlobs: string[], repository: string) => !globsMatch(privateGlobs, repository);

/** The spec's digest grammar: `algorithm:encoded`. */
const digestGrammar = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;
/** The registered algorithms' encodings: sha256 is stored by, sha512 only recognised. */
const encodings: Record<string, RegExp> = { sha256: /^[a-f0-9]{64}$/, sha512: /^[a-f0-9]{128}$/ };

/**
 * A digest as a read names it: the sha256 wharf stores by, or undefined for a valid digest of
 * another registered algorithm (sha512: nothing here has one, so a read answers "unknown", 404).
 * A malformed digest, or an algorithm the spec does not register, is DIGEST_INVALID.
 */
export function readDigest(text: string): string | undefined {
  const match = digestGrammar.exec(text);
  const encoding = match && encodings[match[1]!];
  if (!match || !encoding?.test(match[2]!)) {
    throw new OciError('DIGEST_INVALID', match && !encoding ? `unsupported digest algorithm ${match[1]!.slice(0, 20)}` : `invalid digest: ${JSON.stringify(text.slice(0, 80))}`);
  }
  return match[1] === 'sha256' ? match[2]! : undefined;
}

/** A digest content is stored by (a push): sha256; any other algorithm is refused (DIGEST_INVALID, as the spec allows). */
export function parseDigest(text: string): string {
  const sha256 = readDigest(text);
  if (sha256 === undefined) throw new OciError('DIGEST_INVALID', `unsupported digest algorithm ${text.split(':')[0]!.slice(0, 20)}: only sha256 is stored`);
  return sha256;
}

/** A manifest reference: a tag, or a digest (by its sha256). */
export type Reference = { tag: string } | { sha256: string };

/** A reference as a read names it: undefined for a digest of an algorithm nothing here is stored by. */
export function readReference(reference: string): Reference | undefined {
  if (!reference.includes(':')) return parseReference(reference);
  const sha256 = readDigest(reference);
  return sha256 === undefined ? undefined : { sha256 };
}

export function parseReference(reference: string): Reference {
  if (reference.includes(':')) return { sha256: parseDigest(reference) };
  if (!isTag(reference)) throw new OciError('MANIFEST_INVALID', `invalid tag: ${JSON.stringify(reference.slice(0, 80))}`);
  return { tag: reference };
}

/** What a manifest refers to, by sha256: blobs (config and layers) and manifests (an index's children); and its subject. */
export interface ManifestRefs {
  mediaType: string;
  blobs: string[];
  manifests: string[];
  subject: string | null;
  /** An image manifest's artifactType, or its config's media type (what the referrers API lists it as). */
  artifactType: string | null;
  annotations: Record<string, string>;
}

interface Descriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
}

/**
 * Reads a pushed manifest: JSON, of a known manifest media type (the `Content-Type` it was pushed
 * with, which its own `mediaType` field must not contradict), each descriptor with a sha256 digest
 * and a size. What it refers to, so that the registry can check they exist and hold them.
 */
export function readManifest(bytes: Uint8Array, contentType: string | undefined): ManifestRefs {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new OciError('MANIFEST_INVALID', 'the manifest is not JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new OciError('MANIFEST_INVALID', 'the manifest is not a JSON object');
  const declared = typeof body.mediaType === 'string' ? body.mediaType : undefined;
  const type = (contentType?.split(';')[0]?.trim() || declared) ?? '';
  if (declared !== undefined && declared !== type) throw new OciError('MANIFEST_INVALID', `the manifest says it is ${declared.slice(0, 100)} but was pushed as ${type.slice(0, 100)}`);
  const descriptor = (d: unknown, what: string): string => {
    const desc = d as Descriptor;
    if (typeof desc !== 'object' || desc === null || typeof desc.digest !== 'string' || typeof desc.size !== 'number' || !Number.isSafeInteger(desc.size) || desc.size < 0) {
      throw new OciError('MANIFEST_INVALID', `${what} is not a descriptor with a digest and a size`);
    }
    return parseDigest(desc.digest);
  };
  const list = (value: unknown, what: string): unknown[] => {
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw new OciError('MANIFEST_INVALID', `${what} is not a list`);
    return value;
  };
  const subject = body.subject === undefined ? null : descriptor(body.subject, 'subject');
  const annotations = typeof body.annotations === 'object' && body.annotations !== null ? (body.annotations as Record<string, string>) : {};
  if (type === manifestMediaTypes.ociIndex || type === manifestMediaTypes.dockerList) {
    const manifests = list(body.manifests, 'manifests').map((m, i) => descriptor(m, `manifests[${i}]`));
    return { mediaType: type, blobs: [], manifests, subject, artifactType: typeof body.artifactType === 'string' ? body.artifactType : null, annotations };
  }
  if (type === manifestMediaTypes.ociManifest || type === manifestMediaTypes.dockerManifest) {
    if (body.schemaVersion !== 2) throw new OciError('MANIFEST_INVALID', 'schemaVersion must be 2');
    const config = body.config as Descriptor | undefined;
    // Layers marked non-distributable (or Docker's foreign layers) live elsewhere (their urls):
    // checked as descriptors, never required in the registry.
    const layers = list(body.layers, 'layers').map((l, i) => ({ sha256: descriptor(l, `layers[${i}]`), elsewhere: /nondistributable|foreign/.test(String((l as Descriptor).mediaType)) }));
    const blobs = [descriptor(config, 'config'), ...layers.filter((l) => !l.elsewhere).map((l) => l.sha256)];
    const artifactType = typeof body.artifactType === 'string' ? body.artifactType : typeof config?.mediaType === 'string' ? config.mediaType : null;
    return { mediaType: type, blobs, manifests: [], subject, artifactType, annotations };
  }
  throw new OciError('MANIFEST_INVALID', `unsupported manifest media type ${JSON.stringify(type.slice(0, 100))}`);
}

/** `n` and `last` of a tags list (or a referrers or catalogue page): the tags after `last`, at most `n`. */
export function page<T>(sorted: T[], key: (item: T) => string, n: number | undefined, last: string | undefined): { items: T[]; more: boolean } {
  const after = last === undefined ? sorted : sorted.filter((item) => key(item) > last);
  if (n === undefined) return { items: after, more: false };
  return { items: after.slice(0, n), more: after.length > n };
}

/** What a path under /v2/ names (`name` checked; references and digests still raw). */
export type OciPath =
  | { kind: 'base' }
  | { kind: 'token' }
  | { kind: 'catalog' }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: string };

/**
 * Reads a request path (as sent, before any decoding, query removed): undefined when it is not a
 * registry path at all. A name with an escaped character (`%2F`), an empty component or `..` is
 * no repository name (NAME_INVALID), never decoded into one.
 */
export function parseOciPath(path: string): OciPath | undefined {
  if (path === '/v2' || path === '/v2/') return { kind: 'base' };
  if (path === '/v2/token') return { kind: 'token' };
  if (path === '/v2/_catalog') return { kind: 'catalog' };
  if (!path.startsWith('/v2/')) return undefined;
  const rest = path.slice('/v2/'.length);
  const patterns: [RegExp, (name: string, tail: string) => OciPath][] = [
    [/^(.+)\/blobs\/uploads\/?$/, (name) => ({ kind: 'uploads', name })],
    [/^(.+)\/blobs\/uploads\/([^/]+)$/, (name, id) => ({ kind: 'upload', name, id })],
    [/^(.+)\/blobs\/([^/]+)$/, (name, digest) => ({ kind: 'blob', name, digest })],
    [/^(.+)\/manifests\/([^/]+)$/, (name, reference) => ({ kind: 'manifest', name, reference })],
    [/^(.+)\/tags\/list$/, (name) => ({ kind: 'tags', name })],
    [/^(.+)\/referrers\/([^/]+)$/, (name, digest) => ({ kind: 'referrers', name, digest })],
  ];
  for (const [pattern, make] of patterns) {
    const match = pattern.exec(rest);
    if (match) return make(checkRepository(match[1]!), match[2] ?? '');
  }
  return undefined;
}

/**
 * The fingerprint Incus (6.19 and later) shows for an OCI image: the sha256 of its compressed
 * layers' digests (`sha256:HEX` each) written one after another, with nothing between them.
 */
export function incusFingerprint(layerSha256s: string[]): string {
  const hash = createHash('sha256');
  for (const sha of layerSha256s) hash.update(`sha256:${sha}`);
  return hash.digest('hex');
}

/** The platforms an index lists (os/architecture[/variant]) by child digest, from its bytes. */
export function indexPlatforms(bytes: Uint8Array): Map<string, string> {
  const platforms = new Map<string, string>();
  try {
    const body = JSON.parse(Buffer.from(bytes).toString('utf8')) as { manifests?: { digest?: unknown; platform?: { os?: unknown; architecture?: unknown; variant?: unknown } }[] };
    for (const m of body.manifests ?? []) {
      const p = m.platform;
      if (typeof m.digest !== 'string' || !p || typeof p.os !== 'string' || typeof p.architecture !== 'string') continue;
      platforms.set(m.digest.replace(/^sha256:/, ''), [p.os, p.architecture, ...(typeof p.variant === 'string' ? [p.variant] : [])].join('/'));
    }
  } catch {
    // An index is checked when pushed; one that cannot be read names no platform.
  }
  return platforms;
}
