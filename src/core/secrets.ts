/**
 * One-time image secrets (POST /1.0/images/FP/secret): how a trusted client lets another server
 * pull a private image. A secret opens that one image to an untrusted caller until the image
 * has been downloaded once (the info calls before the download do not use it up), or it expires.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';

interface Entry {
  fingerprint: string;
  expiresAt: number;
}

export class ImageSecrets {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;

  constructor(ttlMs = 3600_000) {
    this.ttlMs = ttlMs;
  }

  issue(fingerprint: string): string {
    this.expire();
    const secret = randomBytes(32).toString('hex');
    this.entries.set(secret, { fingerprint, expiresAt: Date.now() + this.ttlMs });
    return secret;
  }

  /** Does `secret` open `fingerprint`? */
  allows(secret: string | undefined, fingerprint: string): boolean {
    if (!secret) return false;
    this.expire();
    for (const [known, entry] of this.entries) {
      if (known.length === secret.length && timingSafeEqual(Buffer.from(known), Buffer.from(secret))) return entry.fingerprint === fingerprint;
    }
    return false;
  }

  /** The download happened: the secret is spent. */
  consume(secret: string): void {
    this.entries.delete(secret);
  }

  private expire() {
    const now = Date.now();
    for (const [secret, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(secret);
  }
}
