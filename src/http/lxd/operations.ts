/**
 * The operations resource (`/1.0/operations/ID`, `.../wait`) and the operations wharf answers
 * with. They all finish at once (or are tokens waiting for a secret to be used), so they are
 * kept only for the clients to read back: finished ones for a few minutes, tokens as long as
 * their secret is valid. Kept in the grant store: a client may read an operation back through
 * another serving process than the one that made it.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import type { Store } from '../../core/context.ts';
import type { GrantStore } from '../../meta/grants.ts';
import { notFound } from '../../errors.ts';
import { notAuthorized, viewerOf } from './caller.ts';
import { asyncResponse, operation, sync, type Operation } from './envelope.ts';

export const finishedOperationTtlMs = 5 * 60_000;

export class Operations {
  private readonly grants: GrantStore;
  private readonly finishedTtlMs: number;

  constructor(grants: GrantStore, finishedTtlMs = finishedOperationTtlMs) {
    this.grants = grants;
    this.finishedTtlMs = finishedTtlMs;
  }

  /** Keeps `op` for `ttlMs` (a token: as long as its secret), else for the finished-operation time. */
  add(op: Operation, ttlMs?: number): Promise<void> {
    return this.grants.putOperation(op.id, op, ttlMs ?? this.finishedTtlMs);
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

/** A task that is over (wharf finishes before it answers), kept for clients to read back: 202. */
export async function finishedTask(
  operations: Operations,
  reply: FastifyReply,
  description: string,
  resources: Record<string, string[]> | null,
  metadata: Record<string, unknown> | null,
) {
  const op = operation({ class: 'task', description, status: 'Success', status_code: 200, resources, metadata });
  await operations.add(op);
  return asyncResponse(reply, op);
}

const operationNotFound = () => notFound('Operation not found');

export function operationRoutes(app: FastifyInstance, deps: { store: Store; operations: Operations }) {
  const { store, operations } = deps;

  // As LXD answers it: untrusted callers need the operation's own secret (a daemon pushing an
  // image waits on the push token this way), and get 403 without one before any lookup.
  app.get('/1.0/operations/:id/wait', async (request, reply) => {
    const viewer = await viewerOf(store, request);
    if (!viewer.trusted && !viewer.secret) throw notAuthorized();
    const op = await operations.get((request.params as { id: string }).id);
    if (!op) throw operationNotFound();
    if (!viewer.trusted && !operationSecretMatches(op, viewer.secret)) throw notAuthorized();
    return sync(reply, op);
  });

  app.get('/1.0/operations/:id', async (request, reply) => {
    const op = await operations.get((request.params as { id: string }).id);
    if (!op || !(await viewerOf(store, request)).trusted) throw operationNotFound();
    return sync(reply, op);
  });
}
