/**
 * What a file is, from its first bytes, the way LXD and Incus decide it (shared/archive/detect.go):
 * never from its name.
 */
export type Compression = 'none' | 'gzip' | 'xz' | 'lzma' | 'bzip2' | 'zstd' | 'lz4';

export type FileFormat =
  | { kind: 'tarball'; compression: Compression }
  | { kind: 'squashfs' }
  | { kind: 'qcow2' }
  /** An xdelta3 patch between two versions' rootfs, mirrored beside them (never imported). */
  | { kind: 'vcdiff' }
  /** A blob or manifest of the OCI registry: bytes as an OCI client pushed them, never an image file. */
  | { kind: 'oci' };

/** Enough leading bytes for every signature below (the tar magic sits at offset 257). */
export const sniffLength = 512;

export function detectFormat(head: Uint8Array): FileFormat | undefined {
  const b = head;
  const at = (offset: number, ...bytes: number[]) => bytes.every((v, i) => b[offset + i] === v);
  if (at(0, 0x1f, 0x8b)) return { kind: 'tarball', compression: 'gzip' };
  if (at(0, 0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return { kind: 'tarball', compression: 'xz' };
  if (at(0, 0x28, 0xb5, 0x2f, 0xfd)) return { kind: 'tarball', compression: 'zstd' };
  if (at(0, 0x42, 0x5a, 0x68)) return { kind: 'tarball', compression: 'bzip2' };
  if (at(0, 0x04, 0x22, 0x4d, 0x18)) return { kind: 'tarball', compression: 'lz4' };
  if (at(0, 0x5d, 0x00, 0x00)) return { kind: 'tarball', compression: 'lzma' };
  if (at(0, 0x68, 0x73, 0x71, 0x73)) return { kind: 'squashfs' };
  if (at(0, 0x51, 0x46, 0x49, 0xfb)) return { kind: 'qcow2' };
  if (at(257, 0x75, 0x73, 0x74, 0x61, 0x72)) return { kind: 'tarball', compression: 'none' };
  return undefined;
}

export const tarExtensions: Record<Compression, string> = {
  none: '.tar',
  gzip: '.tar.gz',
  xz: '.tar.xz',
  lzma: '.tar.lzma',
  bzip2: '.tar.bz2',
  zstd: '.tar.zst',
  lz4: '.tar.lz4',
};

/** The file extension LXD gives an exported file of this format. */
export function formatExtension(format: FileFormat): string {
  if (format.kind === 'squashfs') return '.squashfs';
  if (format.kind === 'qcow2') return '.qcow2';
  if (format.kind === 'vcdiff') return '.vcdiff';
  if (format.kind === 'oci') return '';
  return tarExtensions[format.compression];
}

export function describeFormat(format: FileFormat): string {
  return format.kind === 'tarball' ? `${format.compression === 'none' ? 'uncompressed' : format.compression} tarball` : format.kind;
}
