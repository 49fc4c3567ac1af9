/**
 * Image metadata: images, aliases and which blobs they use. Drivers: SQLite (embedded default).
 * Async throughout so that a networked driver fits the same shape.
 */
import type { Alias, BlobRef, Image } from '../domain/image.ts';

export interface BlobRecord extends BlobRef {
  /** Still downloadable until then although no public image lists it (deleted or made private). */
  exposedUntil: string | null;
  referenced: boolean;
}

export interface MetaStore {
  getImage(fingerprint: string): Promise<Image | undefined>;
  /** Images whose fingerprint starts with `prefix`. */
  findImages(prefix: string): Promise<Image[]>;
  listImages(): Promise<Image[]>;
  /** Adds an image and its aliases in one transaction; conflict if either exists. */
  insertImage(image: Image, aliases: Alias[]): Promise<void>;
  /** Replaces the editable fields (public, properties, expiry, auto-update...). */
  updateImage(image: Image, options: { graceUntil: string }): Promise<void>;
  /** Deletes the image and its aliases; its blobs stay downloadable until `graceUntil` if it was public. */
  deleteImage(fingerprint: string, options: { graceUntil: string }): Promise<void>;

  getAlias(name: string): Promise<Alias | undefined>;
  listAliases(): Promise<Alias[]>;
  createAlias(alias: Alias): Promise<void>;
  deleteAlias(name: string): Promise<void>;
  renameAlias(from: string, to: string): Promise<void>;

  getBlob(sha256: string): Promise<BlobRecord | undefined>;
  /** Blobs no image uses whose grace period is over at `now`. */
  collectableBlobs(now: string): Promise<string[]>;
  forgetBlob(sha256: string): Promise<void>;
  knownBlob(sha256: string): Promise<boolean>;

  /** A number that changes whenever any process commits a change. */
  changeVersion(): Promise<number>;
  close(): Promise<void>;
}
