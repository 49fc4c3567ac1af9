/**
 * The grant store in memory, for tests: each call reads and writes with no await in between, so
 * it is atomic as the contract asks (grants.ts). `share()` gives another handle on the same grants,
 * as another process opening the same store would have.
 */
import type { GrantStore, PushGrant } from './grants.ts';

interface GrantData {
  secrets: Map<string, { fingerprint: string; expiresAt: number }>;
  pushGrants: Map<string, { grant: PushGrant; expiresAt: number }>;
  operations: Map<string, { body: string; expiresAt: number }>;
  leases: Map<string, { holder: string; expiresAt: number }>;
}

export class MemoryGrantStore implements GrantStore {
  private readonly data: GrantData;
  private readonly now: () => number;

  constructor(options: { clock?: () => number } = {}, data?: GrantData) {
    this.now = options.clock ?? Date.now;
    this.data = data ?? { secrets: new Map(), pushGrants: new Map(), operations: new Map(), leases: new Map() };
  }

  /** Another handle on the same grants (with the same clock). */
  share(): MemoryGrantStore {
    return new MemoryGrantStore({ clock: this.now }, this.data);
  }

  /** The live entry of `map` at `key`, dropping it when it expired. */
  private live<T extends { expiresAt: number }>(map: Map<string, T>, key: string): T | undefined {
    const entry = map.get(key);
    if (entry && entry.expiresAt <= this.now()) map.delete(key);
    return entry && entry.expiresAt > this.now() ? entry : undefined;
  }

  async addImageSecret(key: string, fingerprint: string, ttlMs: number): Promise<void> {
    this.data.secrets.set(key, { fingerprint, expiresAt: this.now() + ttlMs });
  }

  async imageSecretTarget(key: string): Promise<string | undefined> {
    return this.live(this.data.secrets, key)?.fingerprint;
  }

  async spendImageSecret(key: string): Promise<void> {
    this.data.secrets.delete(key);
  }

  async addPushGrant(key: string, grant: PushGrant, ttlMs: number): Promise<void> {
    this.data.pushGrants.set(key, { grant: structuredClone(grant), expiresAt: this.now() + ttlMs });
  }

  async redeemPushGrant(key: string, fingerprint: string): Promise<PushGrant | undefined> {
    const entry = this.live(this.data.pushGrants, key);
    if (!entry || entry.grant.fingerprint !== fingerprint) return undefined;
    this.data.pushGrants.delete(key);
    return entry.grant;
  }

  async putOperation(id: string, operation: unknown, ttlMs: number): Promise<void> {
    this.data.operations.set(id, { body: JSON.stringify(operation), expiresAt: this.now() + ttlMs });
  }

  async getOperation(id: string): Promise<unknown> {
    const entry = this.live(this.data.operations, id);
    return entry ? JSON.parse(entry.body) : undefined;
  }

  async countOperations(): Promise<number> {
    return [...this.data.operations.keys()].filter((id) => this.live(this.data.operations, id)).length;
  }

  async takeLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const held = this.data.leases.get(name);
    if (held && held.holder !== holder && held.expiresAt > this.now()) return false;
    this.data.leases.set(name, { holder, expiresAt: this.now() + ttlMs });
    return true;
  }

  async renewLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const held = this.data.leases.get(name);
    if (held?.holder !== holder) return false;
    held.expiresAt = this.now() + ttlMs;
    return true;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    if (this.data.leases.get(name)?.holder === holder) this.data.leases.delete(name);
  }

  async close(): Promise<void> {}
}
