/**
 * SHA-256 digests as wharf writes them everywhere: 64 lowercase hex digits. A blob is named by
 * the digest of its bytes, an image by its fingerprint (the digest of its file, or of both files
 * of a split image), and a certificate by the digest of its DER form, as lxc prints it.
 */
import type { X509Certificate } from 'node:crypto';

export const sha256Pattern = /^[0-9a-f]{64}$/;

/** The sha256 of no bytes at all: the only one an empty file can have. */
export const emptySha256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Exactly a digest (blob names, image fingerprints); anything else, uppercase included, is not. */
export function isSha256(text: string): boolean {
  return sha256Pattern.test(text);
}

/**
 * Could `text` name an image by fingerprint: lowercase hex, no longer than a digest, and at
 * least `minLength` digits (shorter prefixes are read as aliases where both are possible).
 */
export function isFingerprintPrefix(text: string, minLength = 1): boolean {
  return text.length >= minLength && /^[0-9a-f]{1,64}$/.test(text);
}

/** The SHA-256 fingerprint of a certificate, as lxc prints it and the trust store keys it. */
export function certificateFingerprint(cert: X509Certificate): string {
  return cert.fingerprint256.replaceAll(':', '').toLowerCase();
}
