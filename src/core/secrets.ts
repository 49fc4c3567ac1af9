/**
 * One-time image secrets (POST /1.0/images/FP/secret): how a trusted client lets another server
 * pull a private image. A secret opens that one image to an untrusted caller until the image
 * has been downloaded once, completely (the info calls before the download, HEAD requests and a
 * download cut off part-way do not use it up), or it expires.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';

interface Entry {
  fingerprint: string;
  expiresAt: number;
  /** A download holds the secret: another one must wait until it ends. */
  downloading: boolean;
}

export class ImageSecrets {
  private readonly entries = new Map<string, Entry>();
  readonly ttlMs: number;

  constructor(ttlMs = 3600_000) {
    this.ttlMs = ttlMs;
  }

  issue(fingerprint: string): string {
    this.expire();
    const secret = randomBytes(32).toString('hex');
    this.entries.set(secret, { fingerprint, expiresAt: Date.now() + this.ttlMs, downloading: false });
    return secret;
  }

  /** Does `secret` open `fingerprint`? Asking does not use it up. */
  allows(secret: string | undefined, fingerprint: string): boolean {
    return this.find(secret)?.fingerprint === fingerprint;
  }

  /**
   * Starts the one download a secret opens; false while another download holds it, so parallel
   * connections cannot each fetch the image with the same secret.
   */
  claim(secret: string): boolean {
    const entry = this.find(secret);
    if (!entry || entry.downloading) return false;
    entry.downloading = true;
    return true;
  }

  /** A claimed download ended: a complete one spends the secret, a cut one leaves it for a retry. */
  settle(secret: string, completed: boolean): void {
    const entry = this.entries.get(secret);
    if (!entry) return;
    if (completed) this.entries.delete(secret);
    else entry.downloading = false;
  }

  private find(secret: string | undefined): Entry | undefined {
    if (!secret) return undefined;
    this.expire();
    const presented = Buffer.from(secret);
    for (const [known, entry] of this.entries) {
      const candidate = Buffer.from(known);
      if (candidate.length === presented.length && timingSafeEqual(candidate, presented)) return entry;
    }
    return undefined;
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
  readonly ttlMs: number;

  constructor(ttlMs = 3600_000) {
    this.ttlMs = ttlMs;
  }

  issue(grant: PushGrant): string {
    const now = Date.now();
    for (const [secret, g] of this.grants) if (g.expiresAt <= now) this.grants.delete(secret);
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
