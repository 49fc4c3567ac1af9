/**
 * Short-lived grants that every serving process must see the same way: one-time image secrets,
 * push grants, the operations the LXD API answers with, and leases on shared work. They expire
 * on their own; losing them (a new data directory, a deleted file) costs clients a retry, never
 * an image. Keys are the sha256 of the secret, so a lookup's timing says nothing about the
 * secrets held.
 *
 * Drivers: SQLite (`grants-sqlite.ts`) and memory (`grants-memory.ts`);
 * test/conformance/grants.test.ts runs the contract against both, with handles as processes.
 */

export interface PushGrant {
  fingerprint: string;
  aliases: string[];
  public: boolean;
  properties: Record<string, string>;
}

/**
 * Every grant lives `ttlMs` from when it was stored, by the store's clock, never the caller's: on
 * several hosts the callers' clocks differ, the store's is one (PostgreSQL's own).
 */
export interface GrantStore extends Leases {
  addImageSecret(key: string, fingerprint: string, ttlMs: number): Promise<void>;
  /** The image a live secret opens. */
  imageSecretTarget(key: string): Promise<string | undefined>;
  /** Uses the secret up (its download completed): no one may use it again. */
  spendImageSecret(key: string): Promise<void>;

  addPushGrant(key: string, grant: PushGrant, ttlMs: number): Promise<void>;
  /** Removes and returns the grant if it is live and for `fingerprint`: redeemed once, by one caller. */
  redeemPushGrant(key: string, fingerprint: string): Promise<PushGrant | undefined>;

  putOperation(id: string, operation: unknown, ttlMs: number): Promise<void>;
  getOperation(id: string): Promise<unknown>;
  /** Live operations, for tests and metrics. */
  countOperations(): Promise<number>;

  close(): Promise<void>;
}

/**
 * Named leases on shared work that one holder at a time may do (the upstream fetch of one lazily
 * mirrored file, the download a one-time secret opens, the background jobs), as containerd's
 * leases: a holder is an instance id (src/instance.ts), a lease lives `ttlMs` from when it was
 * taken or last renewed, by the store's clock, and a holder renews it while it works. One that
 * dies stops renewing, and the lease is free again once expired, whichever host it ran on.
 * Each call is one atomic decision across every handle on the store.
 */
export interface Leases {
  /**
   * Takes the lease for `ttlMs`: true when it was free, expired, or already this holder's
   * (then renewed); false while another holder's has not expired.
   */
  takeLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /**
   * Extends this holder's lease to `ttlMs` from now; false when it is no longer its own (taken by
   * another once expired, or released). Expired and taken by no one, it is still its own.
   */
  renewLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease up if this holder has it; anything else is a no-op. */
  releaseLease(name: string, holder: string): Promise<void>;
}
