/**
 * A metadata store in plain Maps, with the contracts of store.ts: for fast unit tests, and as the
 * second driver that shows the contracts do not depend on SQLite. Not persistent. Handles made by
 * `share()` see the same data, as processes opening the same database do; every method runs to
 * completion without yielding, so each write is atomic against every handle.
 */
import { AppError, ErrorCodes, changedMeanwhile, notFound } from '../errors.ts';
import type { Alias, BlobRef, Delta, Image } from '../domain/image.ts';
import { channelChange, type ChannelChange, type ChannelSetting } from '../domain/channel.ts';
import { viewErrors, type View, type ViewToken } from '../domain/view.ts';
import type { TestResult } from '../domain/test-hooks.ts';
import { imageEvents, type NewEvent, type PipelineEvent } from '../domain/pipeline.ts';
import { pushTokenErrors, type PushToken } from '../domain/push-token.ts';
import { ociManifestUnknown, ociMissing, ociNamedByIndex, ociTagUnknown } from './rows.ts';
import {
  abandonedCollectionMs,
  ociOwners,
  type BlobOwner,
  type BlobRecord,
  type BlobSource,
  type MetaStore,
  type MirrorRecord,
  type OciManifest,
  type RemoteRecord,
  type SiteHealth,
  type SiteRecord,
  type TrustedCertificate,
  type TrustToken,
} from './store.ts';

interface StoredBlob extends BlobRef {
  createdAt: string;
  unpublishedAt: string | null;
  /** When the last image using it was deleted (public or not): collection waits the grace period. */
  releasedAt?: string | null;
  sourceUrl: string | null;
  sourceCertificate: string | null;
  lastAccess: string | null;
}

interface StoredDelta {
  sha256: string;
  ftype: string;
  base: string;
}

/** An image as stored: its blobs by sha256 only (their size and format live in the blob record). */
interface StoredImage {
  image: Omit<Image, 'deltas'>;
  deltas: Map<string, StoredDelta>;
}

/** The data every handle on one memory store shares. */
class MemoryData {
  readonly blobs = new Map<string, StoredBlob>();
  readonly images = new Map<string, StoredImage>();
  readonly aliases = new Map<string, Alias>();
  readonly certificates = new Map<string, TrustedCertificate>();
  readonly tokens = new Map<string, TrustToken>();
  readonly remotes = new Map<string, RemoteRecord>();
  readonly sites = new Map<string, SiteRecord>();
  readonly mirrors = new Map<string, MirrorRecord>();
  /** claim -> sha256 -> expiresAt */
  readonly claims = new Map<string, Map<string, string>>();
  /** sha256 -> when its collection began */
  readonly collections = new Map<string, string>();
  readonly channelSettings = new Map<string, ChannelSetting>();
  readonly views = new Map<string, View>();
  readonly testResults: TestResult[] = [];
  readonly pushTokens = new Map<string, PushToken>();
  /** id -> token */
  readonly viewTokens = new Map<string, ViewToken>();
  /** Channel changes, in the order they were made. */
  readonly history: ChannelChange[] = [];
  /** The event log, in seq order. */
  readonly events: PipelineEvent[] = [];
  /** sha256 -> the owners holding it, as "kind\0id" */
  readonly owners = new Map<string, Set<string>>();
  /** The OCI registry: repository -> the sha256s linked to it. */
  readonly ociLinks = new Map<string, Set<string>>();
  /** repository -> sha256 -> manifest */
  readonly ociManifests = new Map<string, Map<string, OciManifest>>();
  /** repository -> tag -> sha256 */
  readonly ociTags = new Map<string, Map<string, string>>();
  version = 0;
}

/** Code point order, which is SQLite's BINARY collation over UTF-8 (UTF-16 units order differently). */
function compareText(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const byKeys =
  <T>(...keys: ((item: T) => string)[]) =>
  (a: T, b: T): number => {
    for (const key of keys) {
      const order = compareText(key(a), key(b));
      if (order !== 0) return order;
    }
    return 0;
  };

const copy = <T>(value: T): T => structuredClone(value);

/** An owner as one key; NUL sorts before any other character, so keys order by kind, then id. */
const ownerKey = (owner: BlobOwner) => `${owner.kind}\0${owner.id}`;

export class MemoryMetaStore implements MetaStore {
  private shared = new MemoryData();
  private closed = false;

  /** Another handle on the same data, as another process opening the same database. */
  share(): MemoryMetaStore {
    const other = new MemoryMetaStore();
    other.shared = this.shared;
    return other;
  }

  private get data(): MemoryData {
    if (this.closed) throw new Error('The metadata store is closed');
    return this.shared;
  }

  /**
   * Runs one write: checks throw before anything changes, and the change counts once it is done
   * (unless `counts` is false: not a change the serving processes render, such as the registry's).
   */
  private write<T>(fn: (data: MemoryData) => T, counts = true): T {
    const data = this.data;
    const result = fn(data);
    if (counts) data.version++;
    return result;
  }

  // Images and aliases

  private imageOf(data: MemoryData, stored: StoredImage): Image {
    const ref = (sha256: string): BlobRef => {
      const blob = data.blobs.get(sha256)!;
      return { sha256, size: blob.size, format: copy(blob.format) };
    };
    const deltas = [...stored.deltas.values()]
      .sort(byKeys<StoredDelta>((d) => d.base, (d) => d.ftype, (d) => d.sha256))
      .map((d) => ({ ...ref(d.sha256), ftype: d.ftype, base: d.base }));
    const image = copy(stored.image);
    return {
      ...image,
      metadata: ref(image.metadata.sha256),
      rootfs: image.rootfs === null ? null : ref(image.rootfs.sha256),
      deltas,
    };
  }

  async getImage(fingerprint: string): Promise<Image | undefined> {
    const data = this.data;
    const stored = data.images.get(fingerprint);
    return stored && this.imageOf(data, stored);
  }

  async findImages(prefix: string): Promise<Image[]> {
    const data = this.data;
    return [...data.images.values()]
      .filter((s) => s.image.fingerprint.startsWith(prefix))
      .sort(byKeys<StoredImage>((s) => s.image.fingerprint))
      .map((s) => this.imageOf(data, s));
  }

  async listImages(): Promise<Image[]> {
    const data = this.data;
    return [...data.images.values()]
      .sort(byKeys<StoredImage>((s) => s.image.uploadedAt, (s) => s.image.fingerprint))
      .map((s) => this.imageOf(data, s));
  }

  private aliasConflict(name: string) {
    return new AppError(ErrorCodes.conflict, `Alias "${name}" already exists`, { hint: 'Delete it first (image alias delete) or choose another name.' });
  }

  /** Throws what adding these aliases would break; `adding` is an image being recorded in the same write. */
  private checkNewAliases(data: MemoryData, aliases: Alias[], adding?: string) {
    const names = new Set<string>();
    for (const alias of aliases) {
      if (data.aliases.has(alias.name) || names.has(alias.name)) throw this.aliasConflict(alias.name);
      names.add(alias.name);
      if (alias.fingerprint !== adding && !data.images.has(alias.fingerprint)) throw notFound(`Image "${alias.fingerprint}" not found`);
    }
  }

  private recordBlob(data: MemoryData, blob: BlobRef, now: string) {
    if (data.blobs.has(blob.sha256)) return;
    data.blobs.set(blob.sha256, {
      sha256: blob.sha256,
      size: blob.size,
      format: copy(blob.format),
      createdAt: now,
      unpublishedAt: null,
      sourceUrl: null,
      sourceCertificate: null,
      lastAccess: null,
    });
  }

  private recordDeltas(data: MemoryData, stored: StoredImage, deltas: Delta[], now: string) {
    for (const delta of deltas) {
      this.recordBlob(data, delta, now);
      if (!stored.deltas.has(delta.sha256)) stored.deltas.set(delta.sha256, { sha256: delta.sha256, ftype: delta.ftype, base: delta.base });
    }
  }

  async insertImage(image: Image, aliases: Alias[], sources: Record<string, BlobSource> = {}, actor = ''): Promise<void> {
    this.write((data) => {
      if (data.images.has(image.fingerprint)) throw new AppError(ErrorCodes.conflict, `An image with fingerprint ${image.fingerprint} already exists`);
      this.checkNewAliases(data, aliases, image.fingerprint);
      for (const blob of [image.metadata, image.rootfs]) if (blob) this.recordBlob(data, blob, image.uploadedAt);
      const { deltas, ...rest } = copy(image);
      const stored: StoredImage = { image: { ...rest, revision: 1 }, deltas: new Map() };
      data.images.set(image.fingerprint, stored);
      for (const alias of aliases) data.aliases.set(alias.name, copy(alias));
      this.recordDeltas(data, stored, deltas, image.uploadedAt);
      for (const [sha, source] of Object.entries(sources)) {
        const blob = data.blobs.get(sha);
        if (blob) Object.assign(blob, { sourceUrl: source.url, sourceCertificate: source.certificate });
      }
      this.appendEvents(data, imageEvents(undefined, image, actor, new Date().toISOString()));
    });
  }

  private appendEvents(data: MemoryData, events: NewEvent[]) {
    for (const event of events) data.events.push({ seq: data.events.length + 1, ...copy(event) });
  }

  async events(after: number, limit: number): Promise<PipelineEvent[]> {
    return copy(this.data.events.filter((e) => e.seq > after).slice(0, limit));
  }

  async lastEvent(): Promise<number> {
    return this.data.events.length;
  }

  async addDeltas(fingerprint: string, deltas: Delta[]): Promise<void> {
    this.write((data) => {
      const stored = data.images.get(fingerprint);
      if (!stored) throw notFound(`Image "${fingerprint}" not found`);
      this.recordDeltas(data, stored, deltas, new Date().toISOString());
    });
  }

  /** A deleted image's blobs are kept through the grace period; a public image's keep being served until the clients' index caches expire. */
  private markReleased(data: MemoryData, stored: StoredImage) {
    const now = new Date().toISOString();
    const { metadata, rootfs } = stored.image;
    for (const sha of [metadata.sha256, rootfs?.sha256, ...stored.deltas.keys()]) {
      const blob = sha === undefined ? undefined : data.blobs.get(sha);
      if (!blob) continue;
      blob.releasedAt = now;
      if (stored.image.public) blob.unpublishedAt = now;
    }
  }

  async updateImage(image: Image, actor = ''): Promise<void> {
    this.write((data) => {
      const stored = data.images.get(image.fingerprint);
      if (!stored) throw notFound(`Image "${image.fingerprint}" not found`);
      if (stored.image.revision !== image.revision) throw changedMeanwhile(`Image ${image.fingerprint}`);
      const now = new Date().toISOString();
      const before = this.imageOf(data, stored);
      const change = channelChange(stored.image.channels, image, actor, now);
      if (change) data.history.push(copy(change));
      const { public: isPublic, properties, expiresAt, lastUsedAt, autoUpdate, cached, updateSource, channels, pinned, stage } = copy(image);
      Object.assign(stored.image, { public: isPublic, properties, expiresAt, lastUsedAt, autoUpdate, cached, updateSource, channels, pinned, stage, revision: image.revision + 1 });
      this.appendEvents(data, imageEvents(before, this.imageOf(data, stored), actor, now));
    });
  }

  async deleteImages(fingerprints: string[], actor = ''): Promise<void> {
    if (fingerprints.length === 0) return;
    this.write((data) => {
      // Checked before anything changes: all or nothing.
      const missing = fingerprints.find((fp) => !data.images.has(fp));
      if (missing !== undefined) throw notFound(`Image "${missing}" not found`);
      for (const fingerprint of new Set(fingerprints)) {
        const stored = data.images.get(fingerprint)!;
        this.appendEvents(data, imageEvents(this.imageOf(data, stored), undefined, actor, new Date().toISOString()));
        this.markReleased(data, stored);
        data.images.delete(fingerprint);
        for (const [name, alias] of data.aliases) if (alias.fingerprint === fingerprint) data.aliases.delete(name);
      }
    });
  }

  async publishImages(fingerprints: string[]): Promise<void> {
    if (fingerprints.length === 0) return;
    this.write((data) => {
      for (const fp of fingerprints) {
        const stored = data.images.get(fp);
        if (stored && !stored.image.public) Object.assign(stored.image, { public: true, revision: stored.image.revision + 1 });
      }
    });
  }

  async channelHistory(fingerprint: string): Promise<ChannelChange[]> {
    return this.data.history.filter((c) => c.fingerprint === fingerprint).map(copy);
  }

  async getAlias(name: string): Promise<Alias | undefined> {
    const alias = this.data.aliases.get(name);
    return alias && copy(alias);
  }

  async listAliases(): Promise<Alias[]> {
    return [...this.data.aliases.values()].sort(byKeys<Alias>((a) => a.name)).map(copy);
  }

  async createAlias(alias: Alias): Promise<void> {
    this.write((data) => {
      this.checkNewAliases(data, [alias]);
      data.aliases.set(alias.name, copy(alias));
    });
  }

  async deleteAlias(name: string): Promise<void> {
    this.write((data) => {
      if (!data.aliases.delete(name)) throw notFound(`Alias "${name}" not found`);
    });
  }

  async renameAlias(from: string, to: string): Promise<void> {
    this.write((data) => {
      const alias = data.aliases.get(from);
      if (!alias) throw notFound(`Alias "${from}" not found`);
      if (from === to) return;
      if (data.aliases.has(to)) throw this.aliasConflict(to);
      data.aliases.delete(from);
      data.aliases.set(to, { ...alias, name: to });
    });
  }

  async moveAliases(from: string, to: string): Promise<void> {
    this.write((data) => {
      const target = data.images.get(to);
      if (!target) throw notFound(`Image "${to}" not found`);
      for (const alias of data.aliases.values()) {
        if (alias.fingerprint === from) Object.assign(alias, { fingerprint: to, type: target.image.type });
      }
    });
  }

  /** One process or one host's file: the host's clock is the store's. */
  async clock(): Promise<Date> {
    return new Date();
  }

  // Blobs, claims and collection

  private used(data: MemoryData, sha256: string): boolean {
    if (data.owners.get(sha256)?.size) return true;
    for (const { image, deltas } of data.images.values()) {
      if (image.metadata.sha256 === sha256 || image.rootfs?.sha256 === sha256 || deltas.has(sha256)) return true;
    }
    return false;
  }

  async getBlob(sha256: string): Promise<BlobRecord | undefined> {
    const data = this.data;
    const blob = data.blobs.get(sha256);
    if (!blob) return undefined;
    return {
      sha256,
      size: blob.size,
      format: copy(blob.format),
      unpublishedAt: blob.unpublishedAt,
      referenced: this.used(data, sha256),
      sourceUrl: blob.sourceUrl,
      sourceCertificate: blob.sourceCertificate,
    };
  }

  async collectableBlobs(unpublishedBefore: string): Promise<string[]> {
    const data = this.data;
    return [...data.blobs.values()]
      .filter((b) => !withinGrace(b, unpublishedBefore) && !this.used(data, b.sha256))
      .map((b) => b.sha256)
      .sort(compareText);
  }

  async touchBlob(sha256: string, now: string): Promise<void> {
    // Not a change anyone needs to re-render for, so it does not count as one.
    const blob = this.data.blobs.get(sha256);
    if (blob) blob.lastAccess = now;
  }

  async idleLazyBlobs(before: string): Promise<string[]> {
    return [...this.data.blobs.values()]
      .filter((b) => b.sourceUrl !== null && (b.lastAccess ?? b.createdAt) < before)
      .map((b) => b.sha256)
      .sort(compareText);
  }

  /** `busy` while one of the blobs is being collected, changing nothing; collections their collector abandoned are dropped. */
  private refuseCollecting(data: MemoryData, sha256s: string[]) {
    const staleBefore = new Date(Date.now() - abandonedCollectionMs).toISOString();
    for (const sha of sha256s) {
      const started = data.collections.get(sha);
      if (started !== undefined && started > staleBefore) throw new AppError(ErrorCodes.busy, `The file ${sha.slice(0, 12)} is being collected; try again`);
    }
    // The collector died mid-way: its file may be gone, which the writer's commit repairs.
    for (const sha of sha256s) data.collections.delete(sha);
  }

  async claimBlobs(claim: string, sha256s: string[], expiresAt: string): Promise<void> {
    this.write((data) => {
      this.refuseCollecting(data, sha256s);
      const held = data.claims.get(claim) ?? new Map<string, string>();
      for (const sha of sha256s) if (!held.has(sha)) held.set(sha, expiresAt);
      if (held.size) data.claims.set(claim, held);
    });
  }

  async holdBlobs(owner: BlobOwner, blobs: BlobRef[]): Promise<void> {
    this.write((data) => {
      this.refuseCollecting(data, blobs.map((b) => b.sha256));
      const now = new Date().toISOString();
      for (const blob of blobs) {
        this.recordBlob(data, blob, now);
        this.hold(data, owner, blob.sha256);
      }
    });
  }

  private hold(data: MemoryData, owner: BlobOwner, sha256: string) {
    const owners = data.owners.get(sha256) ?? new Set<string>();
    owners.add(ownerKey(owner));
    data.owners.set(sha256, owners);
  }

  private unhold(data: MemoryData, owner: BlobOwner, sha256: string) {
    const owners = data.owners.get(sha256);
    if (!owners?.delete(ownerKey(owner))) return;
    if (owners.size === 0) data.owners.delete(sha256);
  }

  async releaseBlobs(owner: BlobOwner, options: { sha256s?: string[]; published?: boolean } = {}): Promise<void> {
    this.write((data) => {
      const key = ownerKey(owner);
      const now = new Date().toISOString();
      for (const [sha, owners] of data.owners) {
        if (!owners.has(key) || (options.sha256s && !options.sha256s.includes(sha))) continue;
        owners.delete(key);
        if (owners.size === 0) data.owners.delete(sha);
        const blob = data.blobs.get(sha);
        if (options.published && blob && !this.used(data, sha)) blob.unpublishedAt = now;
      }
    });
  }

  async ownedBlobs(): Promise<{ sha256: string; size: number }[]> {
    const data = this.data;
    return [...data.owners]
      .filter(([sha, owners]) => owners.size && data.blobs.has(sha))
      .map(([sha256]) => ({ sha256, size: data.blobs.get(sha256)!.size }))
      .sort((a, b) => compareText(a.sha256, b.sha256));
  }

  async blobOwners(sha256: string): Promise<BlobOwner[]> {
    return [...(this.data.owners.get(sha256) ?? [])].sort(compareText).map((key) => {
      const [kind, id] = key.split('\0') as [string, string];
      return { kind, id };
    });
  }

  async releaseClaim(claim: string): Promise<void> {
    this.write((data) => data.claims.delete(claim));
  }

  async beginCollect(sha256: string, unpublishedBefore: string, now: string): Promise<boolean> {
    return this.write((data) => {
      for (const [claim, held] of data.claims) {
        for (const [sha, expiresAt] of held) if (expiresAt <= now) held.delete(sha);
        if (held.size === 0) data.claims.delete(claim);
      }
      for (const held of data.claims.values()) if (held.has(sha256)) return false;
      const blob = data.blobs.get(sha256);
      if (blob && (this.used(data, sha256) || withinGrace(blob, unpublishedBefore))) return false;
      const started = data.collections.get(sha256);
      const staleBefore = new Date(Date.parse(now) - abandonedCollectionMs).toISOString();
      if (started !== undefined && started > staleBefore) return false;
      data.collections.set(sha256, now);
      return true;
    });
  }

  async finishCollect(sha256: string): Promise<void> {
    this.write((data) => {
      if (!this.used(data, sha256)) data.blobs.delete(sha256);
      data.collections.delete(sha256);
    });
  }

  // Trust

  async listCertificates(): Promise<TrustedCertificate[]> {
    return [...this.data.certificates.values()].sort(byKeys<TrustedCertificate>((c) => c.name, (c) => c.fingerprint)).map(copy);
  }

  async getCertificate(fingerprint: string): Promise<TrustedCertificate | undefined> {
    const cert = this.data.certificates.get(fingerprint);
    return cert && copy(cert);
  }

  async addCertificate(cert: TrustedCertificate): Promise<void> {
    this.write((data) => {
      if (data.certificates.has(cert.fingerprint)) throw new AppError(ErrorCodes.conflict, `Certificate ${cert.fingerprint.slice(0, 12)} is already trusted`);
      data.certificates.set(cert.fingerprint, copy(cert));
    });
  }

  async removeCertificate(fingerprint: string): Promise<void> {
    this.write((data) => {
      if (!data.certificates.delete(fingerprint)) throw notFound(`Certificate ${fingerprint} is not trusted`);
    });
  }

  async addToken(token: TrustToken): Promise<void> {
    this.write((data) => {
      if (data.tokens.has(token.secret)) throw new AppError(ErrorCodes.conflict, 'A token with this secret exists');
      data.tokens.set(token.secret, copy(token));
    });
  }

  async consumeToken(secret: string, now: string): Promise<TrustToken | undefined> {
    return this.write((data) => {
      for (const [key, token] of data.tokens) if (token.expiresAt <= now) data.tokens.delete(key);
      const token = data.tokens.get(secret);
      data.tokens.delete(secret);
      return token;
    });
  }

  // Remotes and mirrors

  async listRemotes(): Promise<RemoteRecord[]> {
    return [...this.data.remotes.values()].sort(byKeys<RemoteRecord>((r) => r.name)).map(copy);
  }

  async putRemote(remote: RemoteRecord): Promise<void> {
    this.write((data) => data.remotes.set(remote.name, copy(remote)));
  }

  async removeRemote(name: string): Promise<void> {
    this.write((data) => {
      if (!data.remotes.delete(name)) throw notFound(`Remote "${name}" not found`);
    });
  }

  async listChannels(): Promise<ChannelSetting[]> {
    return [...this.data.channelSettings.values()].sort(byKeys<ChannelSetting>((c) => c.name)).map(copy);
  }

  async putChannel(setting: ChannelSetting): Promise<void> {
    this.write((data) => data.channelSettings.set(setting.name, copy(setting)));
  }

  async addPushToken(token: PushToken): Promise<void> {
    this.write((data) => {
      if (data.pushTokens.has(token.id)) throw pushTokenErrors.exists(token.id);
      data.pushTokens.set(token.id, copy(token));
    });
  }

  async listPushTokens(): Promise<PushToken[]> {
    return [...this.data.pushTokens.values()].sort(byKeys<PushToken>((t) => t.createdAt, (t) => t.id)).map(copy);
  }

  async revokePushToken(id: string): Promise<boolean> {
    return this.write((data) => {
      const token = data.pushTokens.get(id);
      if (!token) throw pushTokenErrors.missing(id);
      if (token.revokedAt !== null) return false;
      token.revokedAt = new Date().toISOString();
      return true;
    });
  }

  async addTestResult(result: TestResult): Promise<void> {
    this.write((data) => data.testResults.push(copy(result)));
  }

  async testResults(fingerprint: string): Promise<TestResult[]> {
    return this.data.testResults
      .filter((r) => r.fingerprint === fingerprint)
      .sort(byKeys<TestResult>((r) => r.startedAt, (r) => r.hook, (r) => String(r.attempt).padStart(3, '0')))
      .map(copy);
  }

  async listViews(): Promise<View[]> {
    return [...this.data.views.values()].sort(byKeys<View>((v) => v.name)).map(copy);
  }

  async addView(view: View): Promise<void> {
    this.write((data) => {
      if (data.views.has(view.name)) throw viewErrors.exists(view.name);
      data.views.set(view.name, copy(view));
    });
  }

  async removeView(name: string): Promise<void> {
    this.write((data) => {
      if (!data.views.delete(name)) throw viewErrors.missing(name);
      for (const [id, token] of data.viewTokens) if (token.view === name) data.viewTokens.delete(id);
    });
  }

  async addViewToken(token: ViewToken): Promise<void> {
    this.write((data) => {
      if (!data.views.has(token.view)) throw viewErrors.missing(token.view);
      if (data.viewTokens.has(token.id)) throw viewErrors.tokenExists(token.id);
      data.viewTokens.set(token.id, copy(token));
    });
  }

  async listViewTokens(): Promise<ViewToken[]> {
    return [...this.data.viewTokens.values()].sort(byKeys<ViewToken>((t) => t.view, (t) => t.createdAt, (t) => t.id)).map(copy);
  }

  async revokeViewTokens(view: string, id: string | undefined): Promise<number> {
    return this.write((data) => {
      if (!data.views.has(view)) throw viewErrors.missing(view);
      const token = id === undefined ? undefined : data.viewTokens.get(id);
      if (id !== undefined && token?.view !== view) throw viewErrors.tokenMissing(view, id);
      const now = new Date().toISOString();
      let revoked = 0;
      for (const t of token ? [token] : data.viewTokens.values()) {
        if (t.view !== view || t.revokedAt !== null) continue;
        t.revokedAt = now;
        revoked++;
      }
      return revoked;
    });
  }

  async listSites(): Promise<SiteRecord[]> {
    return [...this.data.sites.values()].sort(byKeys<SiteRecord>((s) => s.name)).map(copy);
  }

  async putSite(site: Omit<SiteRecord, 'health'>): Promise<void> {
    this.write((data) => data.sites.set(site.name, copy({ ...site, health: data.sites.get(site.name)?.health ?? null })));
  }

  async removeSite(name: string): Promise<void> {
    this.write((data) => {
      if (!data.sites.delete(name)) throw notFound(`Site "${name}" not found`);
    });
  }

  async recordSiteHealth(results: { name: string; health: SiteHealth }[]): Promise<void> {
    this.write((data) => {
      for (const { name, health } of results) {
        const site = data.sites.get(name);
        if (site) site.health = copy(health);
      }
    });
  }

  async listMirrors(): Promise<MirrorRecord[]> {
    return [...this.data.mirrors.values()].sort(byKeys<MirrorRecord>((m) => m.name)).map(copy);
  }

  async putMirror(mirror: MirrorRecord): Promise<void> {
    this.write((data) => data.mirrors.set(mirror.name, copy(mirror)));
  }

  async removeMirror(name: string): Promise<void> {
    this.write((data) => {
      if (!data.mirrors.delete(name)) throw notFound(`Mirror "${name}" not found`);
    });
  }

  // The OCI registry. Its writes do not count as changes: nothing the simplestreams index shows moves.

  async linkOciBlob(repository: string, blob: BlobRef): Promise<void> {
    this.write((data) => {
      this.refuseCollecting(data, [blob.sha256]);
      this.recordBlob(data, blob, new Date().toISOString());
      const links = data.ociLinks.get(repository) ?? new Set<string>();
      links.add(blob.sha256);
      data.ociLinks.set(repository, links);
      this.hold(data, ociOwners.blob(repository, blob.sha256), blob.sha256);
    }, false);
  }

  /** Linked, or held by one of the repository's manifests (as SQL's ociHeldSelect asks blob_owners). */
  private ociHeld(data: MemoryData, repository: string, sha256: string): boolean {
    const owners = data.owners.get(sha256);
    if (!owners) return false;
    const manifests = ownerKey(ociOwners.manifest(repository, ''));
    return owners.has(ownerKey(ociOwners.blob(repository, sha256))) || [...owners].some((key) => key.startsWith(manifests));
  }

  async ociBlobLinked(repository: string, sha256: string): Promise<boolean> {
    return this.ociHeld(this.data, repository, sha256);
  }

  async unlinkOciBlob(repository: string, sha256: string): Promise<boolean> {
    return this.write((data) => {
      const links = data.ociLinks.get(repository);
      if (!links?.delete(sha256)) return false;
      if (links.size === 0) data.ociLinks.delete(repository);
      this.unhold(data, ociOwners.blob(repository, sha256), sha256);
      return true;
    }, false);
  }

  async putOciManifest(manifest: OciManifest, bytes: BlobRef, tag?: string, options: { cached?: boolean } = {}): Promise<void> {
    const { repository, sha256 } = manifest;
    this.write((data) => {
      // Pushed before: its record and its holds are there already; only the tag moves.
      if (!data.ociManifests.get(repository)?.has(sha256)) {
        if (!options.cached) {
          for (const blob of manifest.blobs) if (!this.ociHeld(data, repository, blob)) throw ociMissing('blob', blob, repository);
          for (const child of manifest.manifests) if (!data.ociManifests.get(repository)?.has(child)) throw ociMissing('manifest', child, repository);
        }
        const held = options.cached ? [sha256] : [...new Set([sha256, ...manifest.blobs])];
        this.refuseCollecting(data, held);
        const now = new Date().toISOString();
        this.recordBlob(data, bytes, now);
        const manifests = data.ociManifests.get(repository) ?? new Map<string, OciManifest>();
        manifests.set(sha256, { ...copy(manifest), createdAt: now });
        data.ociManifests.set(repository, manifests);
        // Its children are held by their own records (which it keeps from deletion).
        for (const sha of held) this.hold(data, ociOwners.manifest(repository, sha256), sha);
      }
      if (tag === undefined) return;
      const tags = data.ociTags.get(repository) ?? new Map<string, string>();
      tags.set(tag, sha256);
      data.ociTags.set(repository, tags);
    }, false);
  }

  async getOciManifest(repository: string, reference: { tag: string } | { sha256: string }): Promise<OciManifest | undefined> {
    const data = this.data;
    const sha256 = 'tag' in reference ? data.ociTags.get(repository)?.get(reference.tag) : reference.sha256;
    const manifest = sha256 === undefined ? undefined : data.ociManifests.get(repository)?.get(sha256);
    return manifest && copy(manifest);
  }

  async ociTags(repository: string): Promise<string[]> {
    return (await this.ociTagTargets(repository)).map((t) => t.tag);
  }

  async ociTagTargets(repository: string): Promise<{ tag: string; sha256: string }[]> {
    return [...(this.data.ociTags.get(repository) ?? [])].map(([tag, sha256]) => ({ tag, sha256 })).sort(byKeys((t) => t.tag));
  }

  async ociReferrers(repository: string, sha256: string): Promise<OciManifest[]> {
    return [...(this.data.ociManifests.get(repository)?.values() ?? [])]
      .filter((m) => m.subject === sha256)
      .sort(byKeys<OciManifest>((m) => m.sha256))
      .map(copy);
  }

  async deleteOciManifest(repository: string, sha256: string): Promise<void> {
    this.write((data) => {
      const manifests = data.ociManifests.get(repository);
      const manifest = manifests?.get(sha256);
      if (!manifests || !manifest) throw ociManifestUnknown(repository, sha256);
      const index = [...manifests.values()].filter((m) => m.manifests.includes(sha256)).sort(byKeys<OciManifest>((m) => m.sha256))[0];
      if (index) throw ociNamedByIndex(repository, sha256, index.sha256);
      const tags = data.ociTags.get(repository);
      for (const [tag, target] of tags ?? []) if (target === sha256) tags!.delete(tag);
      if (tags?.size === 0) data.ociTags.delete(repository);
      manifests.delete(sha256);
      if (manifests.size === 0) data.ociManifests.delete(repository);
      for (const sha of new Set([sha256, ...manifest.blobs])) this.unhold(data, ociOwners.manifest(repository, sha256), sha);
    }, false);
  }

  async deleteOciTag(repository: string, tag: string): Promise<void> {
    this.write((data) => {
      const tags = data.ociTags.get(repository);
      if (!tags?.delete(tag)) throw ociTagUnknown(repository, tag);
      if (tags.size === 0) data.ociTags.delete(repository);
    }, false);
  }

  async ociRepositories(): Promise<string[]> {
    const data = this.data;
    return [...new Set([...data.ociLinks.keys(), ...data.ociManifests.keys()])].sort(compareText);
  }

  async changeVersion(): Promise<number> {
    return this.data.version;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Within its grace period at `cutoff`: unpublished or released after it. */
const withinGrace = (blob: StoredBlob, cutoff: string) => (blob.unpublishedAt !== null && blob.unpublishedAt > cutoff) || (blob.releasedAt != null && blob.releasedAt > cutoff);
