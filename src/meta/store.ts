/**
 * Everything wharf remembers besides the bytes, as one small contract per concern, which
 * `MetaStore` composes: the image catalogue (images, aliases, deltas, publication), the blob
 * ledger (blob records, claims and collection), trust, remotes, mirrors, and the change feed.
 * A use case that needs one concern takes that interface only.
 *
 * Drivers: SQLite (`sqlite.ts`, the embedded default) and memory (`memory.ts`, for tests).
 * test/conformance/meta-*.test.ts runs each contract against both; a new driver joins their list.
 *
 * Rules every contract shares:
 * - Async throughout, so that a networked driver fits the same shape.
 * - Each write is atomic and isolated: it happens whole or not at all, and every handle on the
 *   same store (each process opens its own) sees all of it or none of it. A write that fails
 *   changed nothing.
 * - Records are values: what a method returns belongs to the caller, and a record handed in is
 *   not kept by reference.
 * - Timestamps are ISO 8601 UTC strings as `Date#toISOString` writes them; drivers may compare
 *   them as text. Text is ordered by code point (the byte order of UTF-8).
 * - Errors are `AppError`s (src/errors.ts) with the codes each method names, plus `disk_full`
 *   when the storage is full (nothing changed). Anything else is a driver failure.
 */
import type { Alias, BlobRef, Delta, Image } from '../domain/image.ts';
import type { ChannelChange, ChannelSetting } from '../domain/channel.ts';
import type { View, ViewToken } from '../domain/view.ts';
import type { TestResult } from '../domain/test-hooks.ts';
import type { PipelineEvent } from '../domain/pipeline.ts';
import type { PushToken } from '../domain/push-token.ts';
import type { SiteHealth, SiteRecord } from '../domain/steering.ts';

export type { SiteHealth, SiteRecord };

export interface BlobRecord extends BlobRef {
  /**
   * When a public image using it was last deleted, which starts its grace period; null if that
   * never happened.
   */
  unpublishedAt: string | null;
  /** Whether an image uses it (as metadata, rootfs or delta) or an owner holds it (`holdBlobs`). */
  referenced: boolean;
  /** Where a lazily mirrored file is fetched from on first use; null for files stored up front. */
  sourceUrl: string | null;
  sourceCertificate: string | null;
}

export interface BlobSource {
  url: string;
  certificate: string;
}

export interface TrustedCertificate {
  /** SHA-256 of the DER certificate, lowercase hex. */
  fingerprint: string;
  name: string;
  certificate: string;
  createdAt: string;
  /**
   * The channels whose private images it may read, and nothing else (no write); null: every
   * channel, and every write.
   */
  channels: string[] | null;
}

export interface TrustToken {
  secret: string;
  name: string;
  createdAt: string;
  expiresAt: string;
}

export interface RemoteRecord {
  name: string;
  url: string;
  /** `oci`: another registry, cached through wharf's own at /v2/NAME/ (mirror/oci-cache.ts), never an image server. */
  protocol: 'simplestreams' | 'lxd' | 'oci';
  public: boolean;
  /** PEM pinned for this remote, or empty for the system CA store. */
  certificate: string;
  /** Armored OpenPGP public key(s) its index must be signed by, or empty: indexes are not checked. */
  gpgKey: string;
}

export interface MirrorRecord {
  name: string;
  remote: string;
  /** KEY=VALUE filters on os, release, architecture, variant, type; all must match. */
  filters: Record<string, string>;
  types: ('container' | 'virtual-machine')[];
  /** Versions kept per product. */
  keep: number;
  intervalSeconds: number;
  lazy: boolean;
  lastSync: string | null;
  lastError: string | null;
}

/** A collection that has not finished after this long was left by a collector that died. */
export const abandonedCollectionMs = 10 * 60_000;

/**
 * Images, their hand-made aliases and deltas, and whether they are published. Fingerprints are
 * 64 lowercase hex digits. An image's `metadata`, `rootfs` and `deltas` are read back with the
 * size and format of the blob record (`BlobLedger`); the first record of a sha256 stays.
 */
export interface ImageCatalog {
  /** The image with its deltas (ordered by base, ftype, sha256), or undefined. */
  getImage(fingerprint: string): Promise<Image | undefined>;
  /** Images whose fingerprint starts with `prefix` ('' matches all), ordered by fingerprint. */
  findImages(prefix: string): Promise<Image[]>;
  /** Every image, ordered by uploadedAt, then fingerprint. */
  listImages(): Promise<Image[]>;
  /**
   * Records the image at revision 1 (whatever `image.revision` says), a record for each of its
   * blobs (one already recorded is kept as it is),
   * its deltas, `aliases`, and where lazily fetched blobs come from (`sources`, by sha256), as
   * one write. `conflict` if the fingerprint or any alias name exists (or is given twice);
   * `not_found` if an alias names another image that does not exist. Nothing is kept then.
   * Its `image.uploaded` event is logged in the same write, by `actor`.
   */
  insertImage(image: Image, aliases: Alias[], sources?: Record<string, BlobSource>, actor?: string): Promise<void>;
  /**
   * Replaces the editable fields (public, properties, expiresAt, lastUsedAt, autoUpdate, cached,
   * updateSource, channels, pinned, stage) and ignores the others, if the stored image is still at `image.revision` (the
   * revision it was read at), and moves the revision on: compare and set, so that of two edits
   * made from the same read, on any handle, one is refused (`precondition_failed`) instead of
   * lost. Making a public image private stamps nothing: private takes effect at once, with no
   * grace period. `not_found` if there is no such image. A change of its channels is recorded
   * in the same write (`channelHistory`), by `actor`, at the store's clock, and so are its events
   * (`EventLog`).
   */
  updateImage(image: Image, actor?: string): Promise<void>;
  /** The changes of an image's channels, oldest first (they stay when the image is deleted). */
  channelHistory(fingerprint: string): Promise<ChannelChange[]>;
  /**
   * Deletes the images with their aliases and deltas, as one write; the blob records stay for
   * collection, which leaves every deleted image's blobs alone for the grace period (a private
   * view's index or a secret may have named a private one). A public image's blobs (metadata,
   * rootfs and every delta) are also stamped `unpublishedAt` now: served that long to anyone. `not_found` (naming it) if one of them does not exist, and then none is
   * deleted: a second delete, or one racing another, fails whole and changes nothing. A
   * fingerprint given twice counts once; an empty list writes nothing. Each deletion logs an `image.pruned` event, by `actor`.
   */
  deleteImages(fingerprints: string[], actor?: string): Promise<void>;
  /**
   * Attaches delta files (already stored) to an image, recording their blobs as insertImage does.
   * Idempotent: a delta the image has is left as it is. `not_found` if there is no such image.
   */
  addDeltas(fingerprint: string, deltas: Delta[]): Promise<void>;
  /**
   * Makes these images public as one write, so a product version appears whole or not at all,
   * moving the revision of each it changes. Unknown fingerprints and images already public are
   * skipped; an empty list writes nothing.
   */
  publishImages(fingerprints: string[]): Promise<void>;

  getAlias(name: string): Promise<Alias | undefined>;
  /** Ordered by name. */
  listAliases(): Promise<Alias[]>;
  /** `conflict` if the name exists; `not_found` if its image does not. */
  createAlias(alias: Alias): Promise<void>;
  /** `not_found` if there is no such alias. */
  deleteAlias(name: string): Promise<void>;
  /** Keeps target, description and type. `not_found` if `from` does not exist, `conflict` if `to` does. */
  renameAlias(from: string, to: string): Promise<void>;
  /**
   * Points every alias of image `from` at image `to` (taking its type) as one write; none is
   * fine. `not_found` if image `to` does not exist.
   */
  moveAliases(from: string, to: string): Promise<void>;
}

/**
 * The blobs the catalogue records, the cache state of lazily fetched ones, and the collection
 * protocol of core/collect.ts: "this file is used" and "this file may be deleted" are never both
 * true, across every handle. A claim is held by a writer from before it stores its blobs until
 * its record is in; a collection runs from `beginCollect` until `finishCollect`. Each of those
 * four calls is one atomic decision. Blobs need no record to be claimed or collected (a file
 * stored by a writer that crashed before recording it).
 */
/**
 * What uses blobs besides images (whose files and deltas count by themselves): a kind of owner
 * and its id, such as a registry manifest (`oci-manifest`, `REPOSITORY@SHA256`: `ociOwners`).
 * Collection counts every owner alike, so an owner to come needs no change to it.
 */
export interface BlobOwner {
  kind: string;
  id: string;
}

export interface BlobLedger {
  /**
   * The store's clock, by which the times it records (a deletion that starts a grace period) and
   * the times it is asked about (the grace cutoff of a collection, a claim's expiry) are measured:
   * one clock for every process on every host (PostgreSQL: the database server's).
   */
  clock(): Promise<Date>;
  getBlob(sha256: string): Promise<BlobRecord | undefined>;
  /**
   * Records that `owner` uses `blobs` (each recorded as a blob first if it is not): collection
   * leaves a blob while an image, an owner or a claim holds it. As with `claimBlobs`, `busy` while
   * one of them is being collected, holding none (a writer claims them before it stores them, so
   * its own commit never meets that). Holding again is harmless.
   */
  holdBlobs(owner: BlobOwner, blobs: BlobRef[]): Promise<void>;
  /**
   * `owner` no longer uses `sha256s` (every blob it holds, when not given). `published`: an index
   * named them, so those no one uses any more start their grace period now (as a deleted public
   * image's files). Idempotent.
   */
  releaseBlobs(owner: BlobOwner, options?: { sha256s?: string[]; published?: boolean }): Promise<void>;
  /** The owners holding a blob (images aside), ordered by kind then id. */
  blobOwners(sha256: string): Promise<BlobOwner[]>;
  /** Every blob an owner holds (a registry's links and manifests), once each, by sha256: what a backup must copy besides images' files. */
  ownedBlobs(): Promise<{ sha256: string; size: number }[]>;
  /**
   * Recorded blobs no image uses that were never unpublished or were unpublished at or before
   * `unpublishedBefore`, ordered by sha256: candidates; `beginCollect` decides.
   */
  collectableBlobs(unpublishedBefore: string): Promise<string[]>;
  /** Records a download of a lazy blob (its cache expiry counts from here); any other or unknown: nothing. */
  touchBlob(sha256: string, now: string): Promise<void>;
  /**
   * Blobs with a source whose last download (or, never downloaded, their record) is older than
   * `before`, ordered by sha256: their local copy may be dropped, the record stays.
   */
  idleLazyBlobs(before: string): Promise<string[]>;
  /**
   * Holds blobs against collection under `claim` until `releaseClaim` or `expiresAt` (a writer
   * that dies without releasing). All or nothing: `busy`, claiming none of them, while one is
   * being collected; a collection mark older than `abandonedCollectionMs` is dropped instead (its
   * collector died; the writer's commit puts the bytes back). Claiming again is harmless.
   */
  claimBlobs(claim: string, sha256s: string[], expiresAt: string): Promise<void>;
  /** Releases every blob of `claim`. Idempotent; an unknown claim is fine. */
  releaseClaim(claim: string): Promise<void>;
  /**
   * Drops claims expired at `now`, then starts collecting the blob unless an image uses it, a
   * claim holds it, it was unpublished after `unpublishedBefore`, or a collection of it began
   * less than `abandonedCollectionMs` before `now`. True: the bytes may be deleted now.
   */
  beginCollect(sha256: string, unpublishedBefore: string, now: string): Promise<boolean>;
  /** The bytes are gone: ends the collection and forgets the record unless an image uses it again. Idempotent. */
  finishCollect(sha256: string): Promise<void>;
}

/** Who may use the LXD API as a trusted client: certificates, and one-time join tokens. */
export interface TrustStore {
  /** Ordered by name, then fingerprint. */
  listCertificates(): Promise<TrustedCertificate[]>;
  getCertificate(fingerprint: string): Promise<TrustedCertificate | undefined>;
  /** `conflict` if a certificate with this fingerprint is trusted already. */
  addCertificate(cert: TrustedCertificate): Promise<void>;
  /** `not_found` if it is not trusted. */
  removeCertificate(fingerprint: string): Promise<void>;
  /** `conflict` if a token with this secret exists. */
  addToken(token: TrustToken): Promise<void>;
  /**
   * Removes and returns the token if it exists and expires after `now` (expired tokens are
   * dropped): a token works once, however many handles try it at the same time.
   */
  consumeToken(secret: string, now: string): Promise<TrustToken | undefined>;
}

/** Image servers added by the operator (the built-in ones are not stored). */
export interface RemoteStore {
  /** Ordered by name. */
  listRemotes(): Promise<RemoteRecord[]>;
  /** Adds, or replaces every field of the remote with that name. */
  putRemote(remote: RemoteRecord): Promise<void>;
  /** `not_found` if there is no such remote. */
  removeRemote(name: string): Promise<void>;
}

/** Mirror definitions and the outcome of their last sync. */
export interface MirrorStore {
  /** Ordered by name. */
  listMirrors(): Promise<MirrorRecord[]>;
  /** Adds, or replaces every field of the mirror with that name (syncs record their outcome so). */
  putMirror(mirror: MirrorRecord): Promise<void>;
  /** `not_found` if there is no such mirror. Its images stay. */
  removeMirror(name: string): Promise<void>;
}

/** Sites and their health (the origin's checker records it; every serving process reads it). */
export interface SiteStore {
  /** Ordered by name. */
  listSites(): Promise<SiteRecord[]>;
  /** Adds a site, or replaces the definition of the one with that name (its health is kept). */
  putSite(site: Omit<SiteRecord, 'health'>): Promise<void>;
  /** `not_found` if there is no such site. */
  removeSite(name: string): Promise<void>;
  /** The results of one round of checks, in one write; sites removed meanwhile are skipped. */
  recordSiteHealth(results: { name: string; health: SiteHealth }[]): Promise<void>;
}

/** The settings of channels (retention); a channel with none keeps every version. */
export interface ChannelStore {
  /** Ordered by name. */
  listChannels(): Promise<ChannelSetting[]>;
  /** Adds a channel's settings or replaces them. */
  putChannel(setting: ChannelSetting): Promise<void>;
}

/** A manifest of the OCI registry, as kept: its bytes are the blob `sha256` (stored byte-exact). */
export interface OciManifest {
  repository: string;
  /** The digest's hex (sha256 of the exact bytes pushed). */
  sha256: string;
  mediaType: string;
  size: number;
  /** What it refers to (domain/oci.ts `readManifest`), by sha256: config and layers; an index's children; its subject. */
  blobs: string[];
  manifests: string[];
  subject: string | null;
  artifactType: string | null;
  annotations: Record<string, string>;
  /** When it was first pushed to this repository (by the store's clock). */
  createdAt: string;
}

/**
 * The OCI registry's repositories (issue 27): which blobs each holds, its manifests and tags, all
 * sharing the catalogue's blobs (one sha256, one file, whatever holds it). Holds are blob owners
 * (`BlobLedger.holdBlobs`): a blob linked to a repository is held by `oci-blob`
 * `REPOSITORY@SHA256`; a manifest holds its own bytes and every blob it names by `oci-manifest`
 * `REPOSITORY@SHA256`; so collection never takes what a tag, a manifest, an index or a referrer
 * reaches, and takes a blob once nothing holds it. A repository exists while it holds a blob or a
 * manifest. Names are checked by the caller (domain/oci.ts).
 *
 * Its writes do not move `ChangeFeed.changeVersion` (PostgreSQL; memory; SQLite on the handle that
 * wrote): nothing the simplestreams index shows changes, and a registry push must not make every
 * serving process render it again. SQLite's data_version moves for the other handles all the
 * same (any commit of another connection moves it), which costs them a needless render.
 * Deleting a manifest or a link unpublishes nothing (no index named them): a blob nothing holds
 * any more is collectable at once.
 */
export interface OciStore {
  /** Links `blob` (recorded as a blob first if it is not) to `repository`, holding it. Linking again is harmless. `busy` while it is being collected, linking nothing. */
  linkOciBlob(repository: string, blob: BlobRef): Promise<void>;
  /**
   * Whether the blob is in the repository: linked to it, or held there by one of its manifests
   * (as its config or a layer, or as the manifest's own bytes, which are readable as a blob too).
   */
  ociBlobLinked(repository: string, sha256: string): Promise<boolean>;
  /** Unlinks a blob from a repository; false when it was not linked. Manifests that name it keep holding it. */
  unlinkOciBlob(repository: string, sha256: string): Promise<boolean>;
  /**
   * Records a manifest whose bytes are the stored blob `bytes` (sha256 = manifest.sha256) and, with
   * `tag`, points the tag at it (moving it from another manifest), as one write. Every blob it names
   * must be in the repository (`ociBlobLinked`) and every manifest it names recorded in it, else
   * OciError `MANIFEST_BLOB_UNKNOWN` naming the first missing (blobs first), and nothing is kept;
   * its subject need not exist (referrers may come first). Checked and held in the same write, so
   * that a blob unlinked meanwhile either fails the push or stays held by the manifest, never
   * collected under it. `busy` while one of the blobs it would hold is being collected. Pushing a
   * manifest again keeps the first record, `createdAt` included (only the tag moves); `createdAt`
   * is the store's clock at the first push, whatever `manifest.createdAt` says. `cached`: a
   * pull-through cache's copy of an upstream manifest (checked against its digest), whose blobs and
   * children arrive later, on first request: nothing it names is checked, and it holds only its
   * own bytes (each blob is linked to the repository as it arrives).
   */
  putOciManifest(manifest: OciManifest, bytes: BlobRef, tag?: string, options?: { cached?: boolean }): Promise<void>;
  /** The manifest a tag points at, or with that sha256, in the repository. */
  getOciManifest(repository: string, reference: { tag: string } | { sha256: string }): Promise<OciManifest | undefined>;
  /** The repository's tags, in code point order. */
  ociTags(repository: string): Promise<string[]>;
  /** The repository's tags with the sha256 each points at. */
  ociTagTargets(repository: string): Promise<{ tag: string; sha256: string }[]>;
  /** Manifests of the repository whose subject is `sha256`, by sha256. */
  ociReferrers(repository: string, sha256: string): Promise<OciManifest[]>;
  /**
   * Deletes a manifest and every tag pointing at it, releasing its holds, as one write. OciError
   * `MANIFEST_UNKNOWN` if there is none; `conflict` while an index of the repository names it.
   */
  deleteOciManifest(repository: string, sha256: string): Promise<void>;
  /** Deletes a tag (the manifest stays); OciError `MANIFEST_UNKNOWN` if there is none. */
  deleteOciTag(repository: string, tag: string): Promise<void>;
  /** Every repository, in code point order. */
  ociRepositories(): Promise<string[]>;
}

/**
 * The owners (`BlobOwner`) by which the registry holds blobs: a repository's link to a blob, and
 * a manifest of a repository (its own bytes and every blob it names). Repository names never
 * contain `@`, so the ids of one repository's manifests are exactly those starting `REPOSITORY@`.
 */
export const ociOwners = {
  blob: (repository: string, sha256: string): BlobOwner => ({ kind: 'oci-blob', id: `${repository}@${sha256}` }),
  manifest: (repository: string, sha256: string): BlobOwner => ({ kind: 'oci-manifest', id: `${repository}@${sha256}` }),
};

/** Builders' push tokens (domain/push-token.ts). */
export interface PushTokenStore {
  /** `conflict` if a token has its id. */
  addPushToken(token: PushToken): Promise<void>;
  /** Every token, revoked and expired ones too, by creation then id. */
  listPushTokens(): Promise<PushToken[]>;
  /** Revokes it by the store's clock: true if it was live, false if revoked before; `not_found` if there is none. */
  revokePushToken(id: string): Promise<boolean>;
}

/** What the test hooks said of each image (domain/test-hooks.ts), every attempt kept. */
/**
 * The event log of the publishing pipeline (domain/pipeline.ts `imageEvents`): every insert,
 * deletion and edit of an image appends its events (uploaded; tested; promoted and demoted per
 * channel; pruned) in the same write as the change, by `actor`, so that an event is in the log
 * exactly when its change is in the catalogue. `seq` orders the log: a write's events take the
 * numbers after every event committed before it, so a reader that has seen up to N never later
 * finds an event at or below N (webhooks rely on it; PostgreSQL's sequences would not promise it).
 */
export interface EventLog {
  /** Events with seq above `after`, oldest first, at most `limit`. */
  events(after: number, limit: number): Promise<PipelineEvent[]>;
  /** The seq of the newest event (0 when there is none). */
  lastEvent(): Promise<number>;
}

export interface TestResultStore {
  addTestResult(result: TestResult): Promise<void>;
  /** An image's results, oldest first (by start, then hook, then attempt); they stay when it is deleted. */
  testResults(fingerprint: string): Promise<TestResult[]>;
}

/** Private views and their tokens (domain/view.ts). */
export interface ViewStore {
  /** Ordered by name. */
  listViews(): Promise<View[]>;
  /** `conflict` if a view of that name exists. */
  addView(view: View): Promise<void>;
  /** `not_found` if there is no such view. Its tokens go with it: their URLs stop at once. */
  removeView(name: string): Promise<void>;
  /** `not_found` if its view does not exist; `conflict` if a token has its id. */
  addViewToken(token: ViewToken): Promise<void>;
  /** Every view's tokens (revoked and expired ones too), ordered by view, then creation, then id. */
  listViewTokens(): Promise<ViewToken[]>;
  /**
   * Revokes the view's token `id`, or every token of the view when `id` is undefined, by the
   * store's clock; a token revoked before keeps its time. `not_found` if the view, or the token
   * in it, does not exist. Returns how many were revoked now.
   */
  revokeViewTokens(view: string, id: string | undefined): Promise<number>;
}

/** How a long-running process learns that another one changed the store: the publisher's only signal. */
export interface ChangeFeed {
  /**
   * A number that differs from its previous answer once any handle (any process) has committed a
   * change since; reading changes nothing. A write that changed nothing need not move it, it may
   * move without a visible change, and `touchBlob` and the registry's writes (`OciStore`) need not
   * move it.
   */
  changeVersion(): Promise<number>;
  /**
   * For a driver that can announce changes (PostgreSQL's LISTEN/NOTIFY): calls `onChange` soon
   * after any handle commits a change (and after it may have missed some, a lost connection),
   * until the returned function is called. Without it, readers poll `changeVersion`.
   */
  watch?(onChange: () => void): () => void;
}

/** The whole metadata store, as `openStore` gives it to every use case. */
export interface MetaStore extends ImageCatalog, BlobLedger, TrustStore, RemoteStore, MirrorStore, SiteStore, ChannelStore, ViewStore, TestResultStore, PushTokenStore, EventLog, OciStore, ChangeFeed {
  /** Releases the handle; nothing may be called on it afterwards. */
  close(): Promise<void>;
}
