/**
 * Private views' pure rules (domain/view.ts): tokens and their states, capabilities that open one
 * file of one view under one token, item paths that leave the token out of every artifact URL as
 * the clients resolve them (path.Join), the remote scope wharf itself allows such a URL, and the
 * token's secret out of log text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { posix } from 'node:path';
import fc from 'fast-check';
import { artifactCapability, capabilityMatches, formatToken, hashSecret, parseToken, secretMatches, tokenOpensArtifacts, tokenOpensView, viewArtifactPath, viewSelects } from '../../src/domain/view.ts';
import { redactSecrets } from '../../src/domain/redact.ts';
import { under } from '../../src/remote/fetch.ts';

const secret = 'ab'.repeat(32);
const token = { id: '0123456789ab', view: 'acme', hash: hashSecret(secret) };
const sha = (c: string) => c.repeat(64);

test('a token is wvt_ID_SECRET; only its own secret matches it', () => {
  assert.deepEqual(parseToken(formatToken(token.id, secret)), { id: token.id, secret });
  for (const bad of ['', 'wvt_0123456789ab', `wvt_0123456789AB_${secret}`, `wvt_0123456789ab_${secret}x`, `xwvt_0123456789ab_${secret}`]) assert.equal(parseToken(bad), undefined, bad);
  assert.ok(secretMatches(token, secret));
  assert.ok(!secretMatches(token, 'cd'.repeat(32)));
});

test('a token opens its view until revoked or expired, and its files for the grace period after', () => {
  const now = new Date('2026-12-07T12:00:00Z');
  const live = { expiresAt: null, revokedAt: null };
  assert.ok(tokenOpensView(live, now) && tokenOpensArtifacts(live, now, 0));
  const revoked = { expiresAt: null, revokedAt: '2026-12-07T11:59:00.000Z' };
  assert.ok(!tokenOpensView(revoked, now));
  assert.ok(tokenOpensArtifacts(revoked, now, 120_000));
  assert.ok(!tokenOpensArtifacts(revoked, now, 30_000));
  const expired = { expiresAt: '2026-12-07T11:00:00.000Z', revokedAt: null };
  assert.ok(!tokenOpensView(expired, now) && !tokenOpensArtifacts(expired, now, 60_000));
  assert.ok(tokenOpensView({ expiresAt: '2026-12-07T12:00:01.000Z', revokedAt: null }, now), 'not yet expired');
});

test('a capability opens one file of one view under one token', () => {
  const cap = artifactCapability(token, sha('a'));
  assert.match(cap, /^0123456789ab\.[0-9a-f]{32}$/);
  assert.ok(capabilityMatches(token, sha('a'), cap));
  assert.ok(!capabilityMatches(token, sha('b'), cap), 'another file');
  assert.ok(!capabilityMatches({ ...token, view: 'other' }, sha('a'), cap), 'another view');
  assert.ok(!capabilityMatches({ ...token, hash: hashSecret('cd'.repeat(32)) }, sha('a'), cap), 'another token');
  assert.ok(!capabilityMatches(token, sha('a'), cap.slice(0, -1)));
});

test('item paths, resolved as the clients resolve them against the view URL, carry no token (property)', () => {
  const remote = `/views/acme/${formatToken(token.id, secret)}`;
  const path = viewArtifactPath(token, (s) => s === sha('c'));
  fc.assert(
    fc.property(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), fc.constantFrom('', '/'), (c, slash) => {
      const resolved = posix.join(remote + slash, path({ sha256: sha(c), size: 1, format: { kind: 'squashfs' } as never }));
      assert.ok(!resolved.includes(secret));
      assert.ok(c === 'c' ? resolved.startsWith(`/files/${sha(c)}`) : resolved.startsWith(`/views/acme/files/${token.id}.`), resolved);
    }),
  );
});

test('wharf follows a view URL only onto its own server: its root is the scope, not the token', () => {
  const base = `https://h.example:8443/views/acme/${formatToken(token.id, secret)}`;
  assert.equal(under(base, '../files/x').pathname, '/views/acme/files/x');
  assert.equal(under(base, '../../../files/x').pathname, '/files/x');
  assert.throws(() => under(base, 'https://elsewhere.example/files/x'), /outside itself/);
  // Anything else keeps its own base: a path like a view's without a token, or plain HTTP.
  assert.throws(() => under('https://h.example/views/acme/notatoken', '../files/x'), /outside itself/);
  assert.throws(() => under(base.replace('https:', 'http:'), '../files/x'), /outside itself/);
});

test("a view token's secret is out of every log line; its id stays", () => {
  const line = `{"path":"/views/acme/${formatToken(token.id, secret)}/streams/v1/index.json"}`;
  assert.equal(redactSecrets(line), `{"path":"/views/acme/wvt_${token.id}_REDACTED/streams/v1/index.json"}`);
});

test('a view selects its channel and every filter, public or private', () => {
  const image = { fingerprint: sha('a'), architecture: 'x86_64', type: 'container', public: false, channels: ['stable'], properties: { os: 'Acme', tenant: 'acme' } };
  assert.ok(viewSelects({ channel: 'stable', filters: { os: 'acme', tenant: 'acme' } }, image));
  assert.ok(!viewSelects({ channel: 'daily', filters: {} }, image));
  assert.ok(!viewSelects({ channel: 'stable', filters: { tenant: 'other' } }, image));
});
