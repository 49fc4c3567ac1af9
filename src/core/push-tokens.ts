/**
 * Builders' push tokens (domain/push-token.ts): made (shown once, stored hashed), and who a
 * presented token is, if it may push now.
 */
import { randomBytes } from 'node:crypto';
import { checkProductGlob, formatPushToken, parsePushToken, pushTokenLive, pushTokenMatches, type PushToken } from '../domain/push-token.ts';
import { hashSecret } from '../domain/view.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import type { Store } from './context.ts';

export async function addPushToken(store: Store, name: string, options: { globs: string[]; expiresInSeconds?: number | undefined }): Promise<{ record: PushToken; token: string }> {
  if (!options.globs.length) throw new AppError(ErrorCodes.invalidArgument, 'A push token needs the products it may push: --push GLOB');
  if (!name.trim()) throw new AppError(ErrorCodes.invalidArgument, 'A push token needs a name (the builder it is for)');
  if (options.expiresInSeconds !== undefined && options.expiresInSeconds <= 0) throw new AppError(ErrorCodes.invalidArgument, 'A token must live a while: give --expires a positive duration');
  const now = await store.meta.clock();
  const [id, secret] = [randomBytes(6).toString('hex'), randomBytes(32).toString('hex')];
  const record: PushToken = {
    id,
    name,
    globs: [...new Set(options.globs.map(checkProductGlob))],
    hash: hashSecret(secret),
    createdAt: now.toISOString(),
    expiresAt: options.expiresInSeconds === undefined ? null : new Date(now.getTime() + options.expiresInSeconds * 1000).toISOString(),
    revokedAt: null,
  };
  await store.meta.addPushToken(record);
  return { record, token: formatPushToken(id, secret) };
}

/** The token record `token` is, if it is one and may push now; undefined for anything else. */
export async function livePushToken(store: Store, token: string | undefined): Promise<PushToken | undefined> {
  const parsed = token === undefined ? undefined : parsePushToken(token);
  if (!parsed) return undefined;
  const record = (await store.meta.listPushTokens()).find((t) => t.id === parsed.id);
  return record && pushTokenMatches(record, parsed.secret) && pushTokenLive(record, new Date()) ? record : undefined;
}
