/**
 * The operations wharf answers with. They all finish at once (or are tokens waiting for a
 * secret to be used), so they are kept only for the clients to read back: finished ones for a
 * few minutes, tokens as long as their secret is valid.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Operation } from './envelope.ts';

export const finishedOperationTtlMs = 5 * 60_000;

export class Operations {
  private readonly entries = new Map<string, { op: Operation; expiresAt: number }>();
  private readonly finishedTtlMs: number;

  constructor(finishedTtlMs = finishedOperationTtlMs) {
    this.finishedTtlMs = finishedTtlMs;
  }

  /** Keeps `op` until `expiresAt` (a token: when its secret expires), else for the finished-operation time. */
  add(op: Operation, expiresAt?: number): void {
    this.expire();
    this.entries.set(op.id, { op, expiresAt: expiresAt ?? Date.now() + this.finishedTtlMs });
  }

  get(id: string): Operation | undefined {
    this.expire();
    return this.entries.get(id)?.op;
  }

  get size(): number {
    this.expire();
    return this.entries.size;
  }

  private expire() {
    const now = Date.now();
    for (const [id, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(id);
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
