/**
 * One-time image secrets (POST /1.0/images/FP/secret): how a trusted client lets another server
 * pull a private image. A secret opens that one image to an untrusted caller until the image
 * has been downloaded once, completely (the info calls before the download, HEAD requests and a
 * download cut off part-way do not use it up), or it expires. Kept in the grant store, so every
 * serving process honours a secret any of them issued.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { GrantStore, PushGrant } from '../meta/grants.ts';
import { holdLease } from './lease.ts';
import { instanceId } from '../instance.ts';

export type { PushGrant } from '../meta/grants.ts';

export const grantTtlMs = 3600_000;

/** Grants are stored by the hash of their secret. */
const keyOf = (secret: string) => createHash('sha256').update(secret).digest('hex');

export class ImageSecrets {
  private readonly grants: GrantStore;
  readonly ttlMs: number;

  constructor(grants: GrantStore, ttlMs = grantTtlMs) {
    this.grants = grants;
    this.ttlMs = ttlMs;
  }

  async issue(fingerprint: string): Promise<string> {
    const secret = randomBytes(32).toString('hex');
    await this.grants.addImageSecret(keyOf(secret), fingerprint, this.ttlMs);
    return secret;
  }

  /** Does `secret` open `fingerprint`? Asking does not use it up. */
  async allows(secret: string | undefined, fingerprint: string): Promise<boolean> {
    return secret ? (await this.grants.imageSecretTarget(keyOf(secret))) === fingerprint : false;
  }

  /**
   * Starts the one download a secret opens, under a lease (renewed while it runs): 'busy' while
   * another download holds it, so parallel connections (to any serving process, on any host)
   * cannot each fetch the image with the same secret, and 'spent' once one completed. A holder
   * that dies frees it within the lease's time to live.
   *
   * A download that just completed settles a moment after its last byte left: a client that
   * asks again at once would find the lease still held. So a held lease is waited for up to
   * `waitMs` before answering 'busy', and the same request then learns the secret is spent.
   */
  async claim(secret: string, waitMs = 2_000): Promise<SecretDownload | 'busy' | 'spent'> {
    const key = keyOf(secret);
    // A holder per download, not per process: two downloads in one process are two holders.
    const holder = `${instanceId}/${randomBytes(6).toString('hex')}`;
    const deadline = Date.now() + waitMs;
    let held = await holdLease(this.grants, `secret:${key}`, { holder });
    while (!held && Date.now() < deadline) {
      await sleep(50);
      held = await holdLease(this.grants, `secret:${key}`, { holder });
    }
    if (!held) return 'busy';
    // Taken first, checked after: the download that held it until now may have spent it.
    if ((await this.grants.imageSecretTarget(key)) === undefined) {
      await held.release();
      return 'spent';
    }
    return {
      settle: async (completed) => {
        try {
          if (completed) await this.grants.spendImageSecret(key);
        } finally {
          await held.release();
        }
      },
    };
  }
}

/** The one download a secret opens, in progress. */
export interface SecretDownload {
  /** It ended: a complete one spends the secret (before the lease goes), a cut one leaves it for a retry. */
  settle(completed: boolean): Promise<void>;
}

/**
 * `lxc image copy SRC: wharf: --mode=push`: the trusted client asks wharf for a secret, then the
 * source server uploads the image with it, untrusted. The grant remembers what the client asked
 * for (aliases, public, properties) and can be redeemed once, for that fingerprint only.
 */
export class PushGrants {
  private readonly grants: GrantStore;
  readonly ttlMs: number;

  constructor(grants: GrantStore, ttlMs = grantTtlMs) {
    this.grants = grants;
    this.ttlMs = ttlMs;
  }

  async issue(grant: PushGrant): Promise<string> {
    const secret = randomBytes(32).toString('hex');
    await this.grants.addPushGrant(keyOf(secret), grant, this.ttlMs);
    return secret;
  }

  async redeem(secret: string | undefined, fingerprint: string | undefined): Promise<PushGrant | undefined> {
    if (!secret || !fingerprint) return undefined;
    return this.grants.redeemPushGrant(keyOf(secret), fingerprint);
  }
}
