/**
 * Image metadata: images, aliases and which blobs they use. Drivers: SQLite (embedded default).
 * Async throughout so that a networked driver fits the same shape.
 */
import type { Alias, BlobRef, Delta, Image } from '../domain/image.ts';

export interface BlobRecord extends BlobRef {
  /** When the last public image using it was deleted or made private; null while public or never public. */
  unpublishedAt: string | null;
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
  protocol: 'simplestreams' | 'lxd';
  public: boolean;
  /** PEM pinned for this remote, or empty for the system CA store. */
  certificate: string;
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

export interface MetaStore {
  getImage(fingerprint: string): Promise<Image | undefined>;
  /** Images whose fingerprint starts with `prefix`. */
  findImages(prefix: string): Promise<Image[]>;
  listImages(): Promise<Image[]>;
  /** Adds an image and its aliases in one transaction; conflict if either exists. */
  insertImage(image: Image, aliases: Alias[], sources?: Record<string, BlobSource>): Promise<void>;
  /** Replaces the editable fields (public, properties, expiry, auto-update...). */
  updateImage(image: Image): Promise<void>;
  /** Deletes the image and its aliases; a public image's blobs are marked unpublished now. */
  deleteImage(fingerprint: string): Promise<void>;

  getAlias(name: string): Promise<Alias | undefined>;
  listAliases(): Promise<Alias[]>;
  createAlias(alias: Alias): Promise<void>;
  deleteAlias(name: string): Promise<void>;
  renameAlias(from: string, to: string): Promise<void>;
  /** Attaches delta files (already stored) to an image. */
  addDeltas(fingerprint: string, deltas: Delta[]): Promise<void>;
  /** Points every alias of one image at another, atomically. */
  moveAliases(from: string, to: string): Promise<void>;

  getBlob(sha256: string): Promise<BlobRecord | undefined>;
  /** Blobs no image uses that were not unpublished after `unpublishedBefore`. */
  collectableBlobs(unpublishedBefore: string): Promise<string[]>;
  /** Records a download of a lazily fetched blob (its cache expiry counts from here). */
  touchBlob(sha256: string, now: string): Promise<void>;
  /** Lazily fetched blobs not downloaded since `before`: their local copy may be dropped. */
  idleLazyBlobs(before: string): Promise<string[]>;
  /**
   * Holds blobs against collection (core/collect.ts) until `releaseClaim` or `expiresAt`; fails
   * with code `busy`, claiming nothing, while one of them is being collected.
   */
  claimBlobs(claim: string, sha256s: string[], expiresAt: string): Promise<void>;
  releaseClaim(claim: string): Promise<void>;
  /**
   * Starts collecting a blob, with or without a record, unless it is used, claimed, being
   * collected, or was unpublished after `unpublishedBefore`; says whether it may now be deleted.
   */
  beginCollect(sha256: string, unpublishedBefore: string, now: string): Promise<boolean>;
  /** The bytes are gone: forgets the blob (unless something uses it again) and ends the collection. */
  finishCollect(sha256: string): Promise<void>;

  listCertificates(): Promise<TrustedCertificate[]>;
  getCertificate(fingerprint: string): Promise<TrustedCertificate | undefined>;
  addCertificate(cert: TrustedCertificate): Promise<void>;
  removeCertificate(fingerprint: string): Promise<void>;
  addToken(token: TrustToken): Promise<void>;
  /** Removes and returns the token if it exists and has not expired at `now`: a token works once. */
  consumeToken(secret: string, now: string): Promise<TrustToken | undefined>;

  listRemotes(): Promise<RemoteRecord[]>;
  /** Adds or replaces. */
  putRemote(remote: RemoteRecord): Promise<void>;
  removeRemote(name: string): Promise<void>;

  listMirrors(): Promise<MirrorRecord[]>;
  putMirror(mirror: MirrorRecord): Promise<void>;
  removeMirror(name: string): Promise<void>;
  /** Makes these images public in one transaction: a version appears whole or not at all. */
  publishImages(fingerprints: string[]): Promise<void>;

  /** A number that changes whenever any process commits a change. */
  changeVersion(): Promise<number>;
  close(): Promise<void>;
}
