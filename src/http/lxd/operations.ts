/**
 * The operations wharf answers with. They all finish at once (or are tokens waiting for a
 * secret to be used), so they are kept only for the clients to read back: finished ones for a
 * few minutes, tokens as long as their secret is valid. Kept in the grant store: a client may
 * read an operation back through another serving process than the one that made it.
 */
import { timingSafeEqual } from 'node:crypto';
import type { GrantStore } from '../../meta/grants.ts';
import type { Operation } from './envelope.ts';

export const finishedOperationTtlMs = 5 * 60_000;

export class Operations {
  private readonly grants: GrantStore;
  private readonly finishedTtlMs: number;

  constructor(grants: GrantStore, finishedTtlMs = finishedOperationTtlMs) {
    this.grants = grants;
    this.finishedTtlMs = finishedTtlMs;
  }

  /** Keeps `op` until `expiresAt` (a token: when its secret expires), else for the finished-operation time. */
  add(op: Operation, expiresAt?: number): Promise<void> {
    return this.grants.putOperation(op.id, op, expiresAt ?? Date.now() + this.finishedTtlMs);
  }

  async get(id: string): Promise<Operation | undefined> {
    return (await this.grants.getOperation(id)) as Operation | undefined;
  }

  size(): Promise<number> {
    return this.grants.countOperations();
  }
}

/** Does `secret` match the secret of a token operation (compared in constant time)? */
export function operationSecretMatches(op: Operation, secret: string | undefined): boolean {
  const own = op.metadata?.['secret'];
  if (typeof own !== 'string' || !secret) return false;
  const a = Buffer.from(own);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}
