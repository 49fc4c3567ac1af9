/**
 * Short-lived grants that every serving process must see the same way: one-time image secrets,
 * push grants, the operations the LXD API answers with, and leases on shared work. They expire on their own; losing them
 * (a new data directory, a deleted file) costs clients a retry, never an image. Keys are the
 * sha256 of the secret, so a lookup's timing says nothing about the secrets held.
 */

export interface PushGrant {
  fingerprint: string;
  aliases: string[];
  public: boolean;
  properties: Record<string, string>;
}

export interface GrantStore {
  addImageSecret(key: string, fingerprint: string, expiresAt: number): Promise<void>;
  /** The image a live secret opens. */
  imageSecretTarget(key: string): Promise<string | undefined>;
  /**
   * Takes the secret for one download by `holder` (a process id); false while another live
   * holder has it. A holder that died without settling releases it.
   */
  claimImageSecret(key: string, holder: number): Promise<boolean>;
  /** A claimed download ended: complete, the secret is spent; cut, it is free again. */
  settleImageSecret(key: string, holder: number, completed: boolean): Promise<void>;

  addPushGrant(key: string, grant: PushGrant, expiresAt: number): Promise<void>;
  /** Removes and returns the grant if it is live and for `fingerprint`: redeemed once, by one caller. */
  redeemPushGrant(key: string, fingerprint: string): Promise<PushGrant | undefined>;

  putOperation(id: string, operation: unknown, expiresAt: number): Promise<void>;
  getOperation(id: string): Promise<unknown>;
  /** Live operations, for tests and metrics. */
  countOperations(): Promise<number>;

  /**
   * A named lease for one process's work that others should wait for rather than repeat (the
   * upstream fetch of one lazily mirrored file): false while another live process holds it. A
   * holder that died without releasing it loses it to the next taker.
   */
  takeLease(name: string, holder: number): Promise<boolean>;
  releaseLease(name: string, holder: number): Promise<void>;

  close(): Promise<void>;
}

export type Leases = Pick<GrantStore, 'takeLease' | 'releaseLease'>;
