/**
 * Private views (domain/view.ts): adding and removing them, and the tokens that open them. A token
 * is shown once, when it is made: the store keeps its hash only.
 */
import { randomBytes } from 'node:crypto';
import { checkChannel } from '../domain/channel.ts';
import { checkViewName, formatToken, hashSecret, viewErrors, type View, type ViewToken } from '../domain/view.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import type { Store } from './context.ts';

/** KEY=VALUE filters (any property, as `image list` reads them); a view has its channel of its own. */
export function parseViewFilters(pairs: string[]): Record<string, string> {
  const filters: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = pair.slice(0, eq);
    if (eq <= 0 || eq === pair.length - 1 || key === 'channel' || key === 'public') {
      throw new AppError(ErrorCodes.invalidArgument, `Invalid filter "${pair.slice(0, 200)}"`, {
        hint: 'Use KEY=VALUE on a property (os=acme, architecture=x86_64, type=container, a property of your own); the channel is --channel.',
      });
    }
    filters[key] = pair.slice(eq + 1);
  }
  return filters;
}

export async function addView(store: Store, input: { name: string; channel: string; filters: string[] }): Promise<View> {
  const view: View = {
    name: checkViewName(input.name),
    channel: checkChannel(input.channel),
    filters: parseViewFilters(input.filters),
    createdAt: (await store.meta.clock()).toISOString(),
  };
  await store.meta.addView(view);
  return view;
}

/** A new token for `view`: the record as stored, and the token itself, which is never stored. */
export async function addViewToken(store: Store, viewName: string, options: { expiresInSeconds?: number | undefined; description?: string | undefined } = {}): Promise<{ record: ViewToken; token: string }> {
  const { expiresInSeconds, description = '' } = options;
  if (expiresInSeconds !== undefined && expiresInSeconds <= 0) throw new AppError(ErrorCodes.invalidArgument, 'A token must live a while: give --expires a positive duration');
  const now = await store.meta.clock();
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('hex');
  const record: ViewToken = {
    id,
    view: viewName,
    hash: hashSecret(secret),
    description,
    createdAt: now.toISOString(),
    expiresAt: expiresInSeconds === undefined ? null : new Date(now.getTime() + expiresInSeconds * 1000).toISOString(),
    revokedAt: null,
  };
  await store.meta.addViewToken(record);
  return { record, token: formatToken(id, secret) };
}

/** `view`'s tokens (every view's when undefined); `not_found` for a view that does not exist. */
export async function listViewTokens(store: Store, viewName?: string): Promise<ViewToken[]> {
  if (viewName !== undefined && !(await store.meta.listViews()).some((v) => v.name === viewName)) {
    throw viewErrors.missing(viewName);
  }
  return (await store.meta.listViewTokens()).filter((t) => viewName === undefined || t.view === viewName);
}
