/**
 * What the first TLS record of a connection says about its client, read before the handshake
 * starts. One question only: is it a web browser? Chromium based browsers and Safari offer GREASE
 * cipher suites (RFC 8701); Firefox offers none, but is the one client here to offer the
 * delegated_credentials extension (RFC 9345; NSS has it off unless the application turns it on,
 * as Firefox does). The LXD and Incus clients (Go), curl, OpenSSL, GnuTLS, Python and Node do
 * neither. listen.ts uses the answer to leave browsers unasked for a client certificate.
 *
 * Read by hand, in a few bounded steps, rather than with a ClientHello parsing library: the one
 * made for the job (read-tls-client-hello) parses every extension through a stream and costs
 * about 200 µs per connection here, a tenth of a handshake, on every connection LXD and Incus
 * open (one per request). Everything here stays within the record and answers false when unsure.
 */

/** The first byte of a TLS connection: a handshake record. */
export const handshakeRecord = 0x16;
const clientHelloMessage = 0x01;
const recordHeader = 5;
/** Largest plaintext record (RFC 8446 5.1); a longer one is no ClientHello. */
const maxRecord = 1 << 14;

/**
 * Bytes of the first record, header included, once `head` holds its header; undefined before.
 * A length no ClientHello can have is capped, so a caller never waits for more than that.
 */
export function firstRecordSize(head: Buffer): number | undefined {
  if (head.length < recordHeader) return undefined;
  return recordHeader + Math.min(head.readUInt16BE(3), maxRecord);
}

/** GREASE values are 0x?A?A with both bytes equal (RFC 8701 section 2). */
const isGrease = (value: number) => (value & 0x0f0f) === 0x0a0a && value >> 8 === (value & 0xff);

/** The extension a browser without GREASE (Firefox) offers and no other client here does. */
const delegatedCredentials = 0x0022;

/**
 * True when `record` (the first TLS record) is a browser's ClientHello: one that offers a GREASE
 * cipher suite, or the delegated_credentials extension.
 */
export function fromBrowser(record: Buffer): boolean {
  if (record.length < recordHeader || record[0] !== handshakeRecord) return false;
  const end = Math.min(record.length, recordHeader + record.readUInt16BE(3));
  // handshake type (1), length (3), legacy_version (2), random (32), then legacy_session_id.
  let at = recordHeader;
  if (at + 38 >= end || record[at] !== clientHelloMessage) return false;
  at += 38;
  at += 1 + record[at]!;
  if (at + 2 > end) return false;
  const suitesEnd = at + 2 + record.readUInt16BE(at);
  if (suitesEnd > end) return false;
  for (at += 2; at + 2 <= suitesEnd; at += 2) if (isGrease(record.readUInt16BE(at))) return true;
  // legacy_compression_methods, then the extensions: type (2), length (2), data.
  if (at >= end) return false;
  at += 1 + record[at]!;
  if (at + 2 > end) return false;
  const extensionsEnd = Math.min(end, at + 2 + record.readUInt16BE(at));
  for (at += 2; at + 4 <= extensionsEnd; at += 4 + record.readUInt16BE(at + 2)) if (record.readUInt16BE(at) === delegatedCredentials) return true;
  return false;
}
