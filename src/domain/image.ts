/**
 * The image model. An image is a fingerprint plus one file (unified tarball) or two (metadata
 * tarball + rootfs/disk). Files are blobs named by their sha256, so builds that share a metadata
 * tarball store it once. Each public image is also one version of a product, the way
 * images.linuxcontainers.org groups them: see product.ts.
 */
import type { FileFormat } from './formats.ts';
import type { ImageTemplate } from './metadata.ts';
import type { Stage } from './pipeline.ts';

export type ImageType = 'container' | 'virtual-machine';

export interface BlobRef {
  sha256: string;
  size: number;
  format: FileFormat;
}

/** A delta file (xdelta3) clients may use instead of the full rootfs when they hold `base`. */
export interface Delta extends BlobRef {
  /** squashfs.vcdiff or disk-kvm.img.vcdiff. */
  ftype: string;
  /** The version key of the product version the delta applies to. */
  base: string;
}

export interface UpdateSource {
  server: string;
  protocol: string;
  alias: string;
  certificate: string;
  imageType: string;
  /** The OpenPGP key(s) the server's index must be signed by (a remote added with --gpg-key). */
  gpgKey?: string;
}

export interface Image {
  fingerprint: string;
  type: ImageType;
  /** Canonical name, e.g. x86_64. */
  architecture: string;
  /** The name the file was imported under; LXD shows it and uses it for exports. */
  filename: string;
  /** Total bytes of the image's files. */
  size: number;
  public: boolean;
  /** ISO 8601 timestamps; expiresAt null means never. */
  createdAt: string;
  uploadedAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  properties: Record<string, string>;
  templates: Record<string, ImageTemplate>;
  /** The unified tarball, or the metadata tarball of a split image. */
  metadata: BlobRef;
  /** The rootfs (squashfs or tarball) or VM disk of a split image; absent for unified. */
  rootfs: BlobRef | null;
  autoUpdate: boolean;
  cached: boolean;
  updateSource: UpdateSource | null;
  /** Aliases of the image's product on the server it was mirrored from; empty: derive them. */
  productAliases: string[];
  /** The mirror that manages this image (adds and retires it), if any. */
  mirror: string | null;
  /** Deltas from older versions, as mirrored from upstream; empty for most images. */
  deltas: Delta[];
  /**
   * The channels the image is published in (domain/channel.ts): `default` is the server's root
   * index (/streams/v1/), any other its own root (/NAME/streams/v1/). Sorted, no repeats.
   */
  channels: string[];
  /** The channels whose retention keeps this image whatever its age (`image pin`). Sorted. */
  pinned: string[];
  /** Where the publishing pipeline has it (domain/pipeline.ts), if it came in through staging; null otherwise. */
  stage: Stage | null;
  /**
   * Moves with every change to the image's record (an edit, publishing): an edit made from an
   * older read is refused (ImageCatalog.updateImage compares and sets it). 1 once inserted.
   */
  revision: number;
}

export interface Alias {
  name: string;
  fingerprint: string;
  description: string;
  type: ImageType;
}

export const isUnified = (image: Image) => image.rootfs === null;

/** The hand-made aliases (of `aliases`, any list) that name this image. */
export function aliasesOf(aliases: readonly Alias[], fingerprint: string): Alias[] {
  return aliases.filter((a) => a.fingerprint === fingerprint);
}
