/**
 * JSON schemas of the request bodies the LXD/Incus image API takes (shared/api/image.go,
 * certificate.go). Fastify validates each body against its route's schema; routes attach the
 * result and raise it only after the caller's trust was checked, so an untrusted caller learns
 * nothing from a validation error.
 */
import type { FastifyRequest } from 'fastify';
import { AppError, ErrorCodes } from '../../errors.ts';

const text = { type: 'string' } as const;
const name = { type: 'string', minLength: 1 } as const;
const flag = { type: 'boolean' } as const;
/** Go marshals a nil map or slice as null, and daemons send them so (ImagesPost.aliases). */
const textMap = { type: ['object', 'null'], additionalProperties: text } as const;
const textList = { type: ['array', 'null'], items: text } as const;
/** RFC 3339, as Go marshals a time.Time; LXD's "never" is 0001-01-01T00:00:00Z. */
const time = { type: 'string', format: 'date-time' } as const;

export const imagePutBody = {
  type: 'object',
  properties: { public: flag, properties: textMap, expires_at: time, auto_update: flag, profiles: textList },
} as const;

export const imagesPostBody = {
  type: 'object',
  properties: {
    source: {
      type: 'object',
      properties: { type: text, mode: text, server: text, protocol: text, certificate: text, fingerprint: text, alias: text, secret: text, image_type: text },
    },
    aliases: { type: ['array', 'null'], items: { type: 'object', required: ['name'], properties: { name, description: text } } },
    public: flag,
    properties: textMap,
    auto_update: flag,
    filename: text,
    expires_at: time,
  },
} as const;

export const aliasCreateBody = {
  type: 'object',
  required: ['name', 'target'],
  properties: { name, target: name, description: text, type: text },
} as const;

export const aliasRenameBody = { type: 'object', required: ['name'], properties: { name } } as const;

export const certificatesPostBody = {
  type: 'object',
  properties: { password: text, trust_token: text, name: text, type: text, certificate: text, token: flag },
} as const;

/** The validated body; a body that failed its schema is the caller's 400, raised here. */
export function validBody<T>(request: FastifyRequest): T {
  if (request.validationError) throw new AppError(ErrorCodes.invalidArgument, `Invalid request body: ${request.validationError.message}`);
  return (request.body ?? {}) as T;
}
