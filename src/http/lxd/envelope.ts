/** LXD's response envelopes (shared/api/response.go): sync, async operation, error. */
import type { FastifyReply } from 'fastify';
import { randomUUID } from 'node:crypto';

export function sync(reply: FastifyReply, metadata: unknown, status = 200) {
  return reply
    .code(status)
    .header('content-type', 'application/json')
    .send({ type: 'sync', status: 'Success', status_code: 200, operation: '', error_code: 0, error: '', metadata });
}

const syncHead = Buffer.from('{"type":"sync","status":"Success","status_code":200,"operation":"","error_code":0,"error":"","metadata":');
const syncTail = Buffer.from('}');

const enveloped = new WeakMap<Buffer, Buffer>();

/** The sync envelope around metadata that is already JSON bytes (pre-rendered ones: once each). */
export function syncEnvelope(metadata: Buffer): Buffer {
  let body = enveloped.get(metadata);
  if (!body) {
    body = Buffer.concat([syncHead, metadata, syncTail]);
    enveloped.set(metadata, body);
  }
  return body;
}

export function lxdError(reply: FastifyReply, status: number, message: string) {
  return reply
    .code(status)
    .header('content-type', 'application/json')
    .send({ type: 'error', status: '', status_code: 0, operation: '', error_code: status, error: message, metadata: null });
}

export interface Operation {
  id: string;
  class: 'task' | 'token' | 'websocket';
  description: string;
  created_at: string;
  updated_at: string;
  status: string;
  status_code: number;
  resources: Record<string, string[]> | null;
  metadata: Record<string, unknown> | null;
  may_cancel: boolean;
  err: string;
  location: string;
}

export function operation(fields: Pick<Operation, 'class' | 'description' | 'status' | 'status_code' | 'resources' | 'metadata'> & { err?: string }): Operation {
  const now = new Date().toISOString();
  return { id: randomUUID(), created_at: now, updated_at: now, may_cancel: false, err: '', location: 'none', ...fields };
}

/** 202 with the operation; an operation already final (status_code >= 200) needs no events socket. */
export function asyncResponse(reply: FastifyReply, op: Operation) {
  return reply
    .code(202)
    .header('content-type', 'application/json')
    .header('location', `/1.0/operations/${op.id}`)
    .send({ type: 'async', status: 'Operation created', status_code: 100, operation: `/1.0/operations/${op.id}`, error_code: 0, error: '', metadata: op });
}
