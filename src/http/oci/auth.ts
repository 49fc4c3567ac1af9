/**
 * Who may do what in the registry. Repositories are public unless `registry_private` names
 * them: anyone pulls a public one, with or without a token; a private one, its users only. Pushing and deleting take credentials: a builder's push token (`wharf oci user add` or
 * `wharf token add`: user = its name, password = the token) whose globs match the repository,
 * either as Basic on the request or, as Docker-style clients do it, exchanged at `/v2/token` for a
 * bearer token of that scope. `/v2/` always answers a client without a valid bearer token with the
 * challenge: clients read it there only, and would never send their credentials otherwise.
 */
import type { FastifyRequest } from 'fastify';
import type { Store } from '../../core/context.ts';
import { livePushToken } from '../../core/push-tokens.ts';
import { globsMatch } from '../../domain/push-token.ts';
import { OciError, isPublicRepository as publicIn } from '../../domain/oci.ts';
import { basicCredentials, parseScopes, signToken, tokenLifetimeSeconds, verifyToken, type RegistryAction, type RegistryGrant } from '../../domain/registry-token.ts';
import { httpsBase } from '../base-url.ts';

export const registryService = 'wharf';

export interface RegistryAuth {
  key: Buffer;
  store: Store;
  /** `registry_private`: repositories only their users may pull. */
  privateGlobs: string[];
}

/** Whether anyone may pull the repository (it matches no `registry_private` glob). */
export const isPublicRepository = (auth: RegistryAuth, repository: string) => publicIn(auth.privateGlobs, repository);

/** The challenge every 401 of the registry carries: where to get a token, and for which scope (clients ask for exactly that). */
export function challenge(request: FastifyRequest, scope?: string): string {
  return `Bearer realm="${httpsBase(request.raw)}/v2/token",service="${registryService}"${scope ? `,scope="${scope}"` : ''}`;
}

/** The user Basic credentials name, if they hold: a live push token given as the password, the user its name. */
async function basicUser(auth: RegistryAuth, header: string | undefined): Promise<{ name: string; globs: string[] } | undefined> {
  const credentials = basicCredentials(header);
  if (!credentials) return undefined;
  const token = await livePushToken(auth.store, credentials.password);
  return token && token.name === credentials.user ? { name: token.name, globs: token.globs } : undefined;
}

const mayPush = globsMatch;

/**
 * `GET /v2/token`: a bearer token for the scopes asked, each action granted where allowed (pull
 * always; push and delete to a user whose globs match). Wrong credentials are a 401; none, an
 * anonymous token.
 */
export async function issueToken(auth: RegistryAuth, request: FastifyRequest): Promise<Record<string, unknown>> {
  const header = request.headers.authorization;
  const user = header ? await basicUser(auth, header) : undefined;
  if (header && !user && basicCredentials(header)?.user) throw new OciError('UNAUTHORIZED', 'wrong user name or password');
  const query = request.query as Record<string, string | string[] | undefined>;
  const scopes = [query.scope].flat().filter((s): s is string => typeof s === 'string');
  const access: Record<string, RegistryAction[]> = {};
  for (const [repository, actions] of Object.entries(parseScopes(scopes))) {
    const own = user !== undefined && mayPush(user.globs, repository);
    access[repository] = actions.filter((a) => own || (a === 'pull' && isPublicRepository(auth, repository)));
  }
  const issuedAt = new Date();
  const token = signToken(auth.key, { subject: user?.name ?? '', access, expiresAt: issuedAt.getTime() + tokenLifetimeSeconds * 1000 });
  return { token, access_token: token, expires_in: tokenLifetimeSeconds, issued_at: issuedAt.toISOString() };
}

/** The caller's grant: a valid bearer token's, or Basic credentials' (every action their globs allow), or anonymous. */
async function grantOf(auth: RegistryAuth, request: FastifyRequest): Promise<RegistryGrant | { basic: { name: string; globs: string[] } } | undefined> {
  const header = request.headers.authorization ?? '';
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
  if (bearer) return verifyToken(auth.key, bearer);
  const user = await basicUser(auth, header);
  return user && { basic: user };
}

/** Whether the caller brought a valid bearer token (what `/v2/` answers 200 to). */
export async function authenticated(auth: RegistryAuth, request: FastifyRequest): Promise<boolean> {
  return (await grantOf(auth, request)) !== undefined;
}

/**
 * Refuses the request unless the caller may `action` on `repository`: pulls of a public one are anyone's;
 * otherwise UNAUTHORIZED (with the challenge) without a bearer token of that scope, DENIED for
 * Basic credentials that hold but do not reach this repository.
 */
export async function authorize(auth: RegistryAuth, request: FastifyRequest, repository: string, action: RegistryAction): Promise<void> {
  if (action === 'pull' && isPublicRepository(auth, repository)) return;
  const grant = await grantOf(auth, request);
  const allowed = grant === undefined ? false : 'basic' in grant ? mayPush(grant.basic.globs, repository) : (grant.access[repository] ?? []).includes(action);
  if (allowed) return;
  // A bearer token without this scope: the client asks the token endpoint for one (which grants it
  // only if the user may). Basic credentials that hold but do not reach the repository: denied.
  if (grant === undefined || !('basic' in grant)) {
    throw new OciError('UNAUTHORIZED', `a token with ${action} on ${repository} is needed`, { scope: `repository:${repository}:${action === 'pull' ? 'pull' : `pull,${action}`}` });
  }
  throw new OciError('DENIED', `${grant.basic.name} may not ${action} ${repository}`);
}
