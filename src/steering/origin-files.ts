/**
 * What the site checks compare a site with: the files the origin's index lists now, and the
 * origin's own bytes of them, read from its local store.
 */
import type { BlobStore, ByteRange } from '../blob/store.ts';
import type { BlobRef } from '../domain/image.ts';
import { artifactPath, type IndexPublisher } from '../core/publish.ts';

export interface PublishedFile {
  /** Relative to a site's base URL, as the origin publishes it. */
  path: string;
  sha256: string;
  size: number;
}

export interface OriginFiles {
  /** The smallest file the index lists: every check downloads it whole. */
  smallest(): PublishedFile | undefined;
  /** A file the index lists now, by sha256. */
  find(sha256: string): PublishedFile | undefined;
  /** Every file the index lists now. */
  all(): Iterable<PublishedFile>;
  /** The origin's own bytes of `range` of a file; undefined when it has no local copy to compare with. */
  read(sha256: string, range: ByteRange): Promise<Buffer | undefined>;
}

/**
 * `blobs` is the store under `FetchThroughBlobs`: reading a lazily mirrored file the origin has
 * not fetched yet must not fetch it from its upstream just to check a site.
 */
export function originFiles(publisher: Pick<IndexPublisher, 'smallestArtifact' | 'publishedArtifact' | 'publishedArtifacts'>, blobs: BlobStore): OriginFiles {
  const published = (blob: BlobRef): PublishedFile => ({ path: artifactPath(blob), sha256: blob.sha256, size: blob.size });
  return {
    smallest: () => publisher.smallestArtifact(),
    find(sha256) {
      const blob = publisher.publishedArtifact(sha256);
      return blob && published(blob);
    },
    *all() {
      for (const blob of publisher.publishedArtifacts()) yield published(blob);
    },
    async read(sha256, range) {
      try {
        const chunks: Buffer[] = [];
        for await (const chunk of await blobs.openRead(sha256, range)) chunks.push(chunk as Buffer);
        const bytes = Buffer.concat(chunks);
        return bytes.length === range.end - range.start + 1 ? bytes : undefined;
      } catch {
        // Not stored here (removed meanwhile, or a lazily mirrored file) or unreadable: the origin
        // has nothing to compare with, which says nothing about the site.
        return undefined;
      }
    },
  };
}
