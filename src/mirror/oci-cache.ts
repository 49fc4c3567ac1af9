/**
 * The registry's verified pull-through cache (issue 27): under `/v2/NAME/...`, where NAME is an
 * OCI remote (`wharf oci remote add NAME URL`), repositories are copies of the upstream's,
 * fetched on first request. Every manifest and blob is checked against its digest before it is
 * kept, and kept byte-exact; a tag is revalidated with a HEAD (which Docker Hub does not count as a
 * pull) at most once per TTL; a file is fetched once however many clients ask, in this process and
 * (through leases) in every process sharing the store; when the upstream fails or limits its rate,
 * the cached copy is served, marked stale. The upstream's credentials come from wharf's
 * configuration only; no client's are ever sent on.
 */
import { createHash } from 'node:crypto';
import type { BlobRef } from '../domain/image.ts';
import { OciError, readManifest, type Reference } from '../domain/oci.ts';
import { AppError, ErrorCodes, isAppError } from '../errors.ts';
import type { OciManifest, RemoteRecord } from '../meta/store.ts';
import type { Leases } from '../meta/grants.ts';
import { RegistryClient } from '../remote/oci.ts';
import { commitBlobs } from '../core/collect.ts';
import { keepManifest } from '../core/registry.ts';
import { PipelinedWrites } from '../core/ingest.ts';
import { holdLease } from '../core/lease.ts';
import type { Store } from '../core/context.ts';

const blobRef = (sha256: string, size: number): BlobRef => ({ sha256, size, format: { kind: 'oci' } });
/** How long the list of OCI remotes is used before it is read again: a remote added is cached within this. */
const remotesReadMs = 2000;

/** A repository of the cache: the remote it copies, and its name there. */
export interface CachedRepository {
  remote: RemoteRecord;
  upstream: string;
}

export interface CacheCounters {
  hits: number;
  misses: number;
  stale: number;
  upstreamFetches: number;
}

export class OciCache {
  private readonly store: Store;
  private readonly ttlMs: number;
  private readonly leases: Leases | undefined;
  private readonly clients = new Map<string, RegistryClient>();
  /** When each `repository:tag` was last checked upstream (ms). */
  private readonly checked = new Map<string, number>();
  /** Work under way, by what it fetches: one upstream request however many ask. */
  private readonly inFlight = new Map<string, Promise<unknown>>();
  readonly counters: CacheCounters = { hits: 0, misses: 0, stale: 0, upstreamFetches: 0 };

  /** Per OCI remote, what wharf logs in with (`registry_credentials`). */
  private readonly credentials: Record<string, { username: string; password: string }>;

  constructor(store: Store, options: { ttlMs: number; leases?: Leases | undefined; credentials?: Record<string, { username: string; password: string }> }) {
    this.store = store;
    this.ttlMs = options.ttlMs;
    this.leases = options.leases;
    this.credentials = options.credentials ?? {};
  }

  /** The OCI remotes as last read, and when: every registry request asks, a read a second will do. */
  private remotes: { at: number; list: Promise<RemoteRecord[]> } | undefined;

  /** The cached remote `repository` falls under (its first component names an OCI remote), if any. */
  async route(repository: string): Promise<CachedRepository | undefined> {
    const slash = repository.indexOf('/');
    if (slash < 0) return undefined;
    if (!this.remotes || Date.now() - this.remotes.at > remotesReadMs) {
      const list = this.store.meta.listRemotes().then((all) => all.filter((r) => r.protocol === 'oci'));
      this.remotes = { at: Date.now(), list };
      list.catch(() => (this.remotes = undefined));
    }
    const remote = (await this.remotes.list).find((r) => r.name === repository.slice(0, slash));
    return remote && { remote, upstream: repository.slice(slash + 1) };
  }

  private client(remote: RemoteRecord): RegistryClient {
    const key = `${remote.name}\0${remote.url}\0${remote.certificate}`;
    let client = this.clients.get(key);
    if (!client) this.clients.set(key, (client = new RegistryClient(remote.url, { certificate: remote.certificate, credentials: this.credentials[remote.name] })));
    return client;
  }

  private once<T>(key: string, work: () => Promise<T>): Promise<T> {
    let pending = this.inFlight.get(key) as Promise<T> | undefined;
    if (!pending) {
      pending = work().finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  /**
   * The manifest a reference names, from the cache or upstream: by digest, kept forever once
   * fetched; by tag, checked upstream once per TTL. `stale` says why a cached copy is served
   * without that check succeeding.
   */
  async manifest(repository: string, route: CachedRepository, reference: Reference): Promise<{ manifest: OciManifest; stale?: string }> {
    const local = await this.store.meta.getOciManifest(repository, reference);
    if ('sha256' in reference) {
      if (local) return this.hit({ manifest: local });
      return { manifest: await this.once(`manifest:${repository}@${reference.sha256}`, () => this.fetchManifest(repository, route, reference.sha256, reference.sha256)) };
    }
    const key = `${repository}:${reference.tag}`;
    if (local && Date.now() - (this.checked.get(key) ?? 0) < this.ttlMs) return this.hit({ manifest: local });
    try {
      const manifest = await this.once(`tag:${key}`, async () => {
        const head = await this.client(route.remote).manifest(route.upstream, reference.tag, 'HEAD');
        const current = local && head.digest === local.sha256 ? local : await this.fetchManifest(repository, route, reference.tag, head.digest, reference.tag);
        this.checked.set(key, Date.now());
        return current;
      });
      if (manifest === local) this.counters.hits++;
      return { manifest };
    } catch (err) {
      // The upstream is down, limits its rate or broke: what was kept still holds (it was verified).
      if (!local || !isAppError(err, ErrorCodes.unavailable)) throw err;
      this.counters.stale++;
      return { manifest: local, stale: (err as Error).message };
    }
  }

  private hit<T>(answer: T): T {
    this.counters.hits++;
    return answer;
  }

  /** Fetches a manifest (by `reference`), checks it against `digest` when known, keeps it under `tag`. */
  private async fetchManifest(repository: string, route: CachedRepository, reference: string, digest: string | undefined, tag?: string): Promise<OciManifest> {
    this.counters.misses++;
    this.counters.upstreamFetches++;
    const fetched = await this.client(route.remote).manifest(route.upstream, digest ? `sha256:${digest}` : reference, 'GET');
    const bytes = fetched.bytes!;
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const expected = digest ?? fetched.digest;
    if (expected !== undefined && sha256 !== expected) {
      throw new AppError(ErrorCodes.upstreamCorrupt, `${route.remote.name}: manifest ${route.upstream}:${reference} hashes to ${sha256}, not ${expected}: not kept`);
    }
    let refs;
    try {
      refs = readManifest(bytes, fetched.mediaType || undefined);
    } catch (err) {
      throw new AppError(ErrorCodes.upstreamCorrupt, `${route.remote.name}: manifest ${route.upstream}:${reference}: ${(err as Error).message}`, { cause: err });
    }
    const manifest: OciManifest = { repository, sha256, size: bytes.length, ...refs, createdAt: new Date().toISOString() };
    await keepManifest(this.store, manifest, bytes, tag, { cached: true });
    return (await this.store.meta.getOciManifest(repository, { sha256 })) ?? manifest;
  }

  /** The blob, from the cache, from the store (kept for another repository), or fetched upstream and verified. */
  async blob(repository: string, route: CachedRepository, sha256: string): Promise<BlobRef> {
    const size = await this.store.blobs.size(sha256);
    if (size !== undefined && (await this.store.meta.ociBlobLinked(repository, sha256))) return this.hit(blobRef(sha256, size));
    return this.once(`blob:${sha256}`, async () => {
      const present = await this.store.blobs.size(sha256);
      if (present !== undefined) {
        await commitBlobs(this.store, [], () => this.store.meta.linkOciBlob(repository, blobRef(sha256, present)), [sha256]);
        return this.hit(blobRef(sha256, present));
      }
      return this.fetchBlob(repository, route, sha256);
    });
  }

  /** One process at a time fetches a blob (a lease); the others wait for its copy. */
  private async fetchBlob(repository: string, route: CachedRepository, sha256: string): Promise<BlobRef> {
    const lease = this.leases && (await this.waitForLease(sha256));
    try {
      const present = await this.store.blobs.size(sha256);
      if (present !== undefined) {
        await commitBlobs(this.store, [], () => this.store.meta.linkOciBlob(repository, blobRef(sha256, present)), [sha256]);
        return blobRef(sha256, present);
      }
      this.counters.misses++;
      this.counters.upstreamFetches++;
      const res = await this.client(route.remote).blob(route.upstream, sha256);
      const writer = await this.store.blobs.createWriter();
      try {
        await new PipelinedWrites(writer).pushAll(res as AsyncIterable<Uint8Array>);
        const got = await writer.digest();
        if (got !== sha256) throw new AppError(ErrorCodes.upstreamCorrupt, `${route.remote.name}: blob sha256:${sha256} of ${route.upstream} arrived as sha256:${got}: not kept`);
      } catch (err) {
        res.destroy();
        await writer.abort();
        throw err;
      }
      const ref = blobRef(sha256, writer.size);
      await commitBlobs(this.store, [writer], () => this.store.meta.linkOciBlob(repository, ref));
      return ref;
    } finally {
      await lease?.release();
    }
  }

  private async waitForLease(sha256: string) {
    for (;;) {
      const held = await holdLease(this.leases!, `oci-fetch:${sha256}`);
      if (held) return held;
      if ((await this.store.blobs.size(sha256)) !== undefined) return undefined;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The upstream's tags of a cached repository, or the cache's own when the upstream cannot say. */
  async tags(repository: string, route: CachedRepository): Promise<string[]> {
    try {
      return await this.once(`tags:${repository}`, () => this.client(route.remote).tags(route.upstream));
    } catch (err) {
      if (!isAppError(err, ErrorCodes.unavailable) && !isAppError(err, ErrorCodes.notFound)) throw err;
      const local = await this.store.meta.ociTags(repository);
      if (!local.length) throw new OciError('NAME_UNKNOWN', `${repository}: ${(err as Error).message}`);
      return local;
    }
  }
}
