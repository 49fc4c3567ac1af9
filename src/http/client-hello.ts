/**
 * What the first TLS record of a connection says about its client, read before the handshake
 * starts. One question only: does its ClientHello offer GREASE cipher suites (RFC 8701)? Chromium
 * based browsers and Safari always do; the LXD and Incus clients (Go), curl, OpenSSL, Python and
 * Node never do. listen.ts uses the answer to leave browsers unasked for a client certificate.
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

/** True when `record` (the first TLS record) is a ClientHello offering a GREASE cipher suite. */
export function offersGrease(record: Buffer): boolean {
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
  return false;
}
