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

export interface PushGrant {
  fingerprint: string;
  aliases: string[];
  public: boolean;
  properties: Record<string, string>;
}

/**
 * `lxc image copy SRC: wharf: --mode=push`: the trusted client asks wharf for a secret, then the
 * source server uploads the image with it, untrusted. The grant remembers what the client asked
 * for (aliases, public, properties) and can be redeemed once, for that fingerprint only.
 */
export class PushGrants {
  private readonly grants = new Map<string, PushGrant & { expiresAt: number }>();
  private readonly ttlMs: number;

  constructor(ttlMs = 3600_000) {
    this.ttlMs = ttlMs;
  }

  issue(grant: PushGrant): string {
    const secret = randomBytes(32).toString('hex');
    this.grants.set(secret, { ...grant, expiresAt: Date.now() + this.ttlMs });
    return secret;
  }

  redeem(secret: string | undefined, fingerprint: string | undefined): PushGrant | undefined {
    if (!secret || !fingerprint) return undefined;
    const grant = this.grants.get(secret);
    if (!grant || grant.expiresAt <= Date.now() || grant.fingerprint !== fingerprint) return undefined;
    this.grants.delete(secret);
    return grant;
  }
}
