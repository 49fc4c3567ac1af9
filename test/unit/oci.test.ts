/**
 * The registry's pure rules (domain/oci.ts, domain/registry-token.ts): names and paths as the
 * spec's grammar allows them and nothing a hostile path could turn into another (escaped
 * slashes, `..`), digests, what a manifest refers to, pages, and bearer tokens that only this
 * key signs, for their scopes, until they expire.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { OciError, checkRepository, incusFingerprint, indexPlatforms, page, parseDigest, parseOciPath, parseReference, readDigest, readManifest, readReference } from '../../src/domain/oci.ts';
import { basicCredentials, parseScopes, signToken, tokenKey, verifyToken } from '../../src/domain/registry-token.ts';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err instanceof OciError ? err.ociCode : `not an OciError: ${String(err)}`;
  }
  return 'no error';
};
const hex = 'ab'.repeat(32);

test('registry paths: what each names; hostile names are NAME_INVALID, never decoded', () => {
  assert.deepEqual(parseOciPath('/v2/'), { kind: 'base' });
  assert.deepEqual(parseOciPath('/v2/library/alpine/manifests/3.20'), { kind: 'manifest', name: 'library/alpine', reference: '3.20' });
  assert.deepEqual(parseOciPath(`/v2/a/b/c/blobs/sha256:${hex}`), { kind: 'blob', name: 'a/b/c', digest: `sha256:${hex}` });
  assert.deepEqual(parseOciPath('/v2/a/blobs/uploads/'), { kind: 'uploads', name: 'a' });
  assert.deepEqual(parseOciPath('/v2/a/blobs/uploads/1234-abcd'), { kind: 'upload', name: 'a', id: '1234-abcd' });
  assert.deepEqual(parseOciPath('/v2/a/tags/list'), { kind: 'tags', name: 'a' });
  assert.deepEqual(parseOciPath(`/v2/a/referrers/sha256:${hex}`), { kind: 'referrers', name: 'a', digest: `sha256:${hex}` });
  assert.equal(parseOciPath('/1.0/images'), undefined);
  for (const hostile of ['/v2/..%2Fetc/manifests/x', '/v2/a%2Fb/manifests/x', '/v2/../a/manifests/x', '/v2/a//b/manifests/x', '/v2/A/manifests/x', '/v2/a/./b/tags/list', `/v2/${'a'.repeat(256)}/tags/list`]) {
    assert.equal(code(() => parseOciPath(hostile)), 'NAME_INVALID', hostile);
  }
  fc.assert(
    fc.property(fc.string(), (name) => {
      try {
        checkRepository(name);
      } catch {
        return;
      }
      assert.ok(!name.includes('%') && !name.split('/').some((c) => c === '' || c === '.' || c === '..'), name);
    }),
  );
});

test('digests and references: sha256 only, lowercase hex; tags by the grammar', () => {
  assert.equal(parseDigest(`sha256:${hex}`), hex);
  assert.equal(code(() => parseDigest(`sha512:${'a'.repeat(128)}`)), 'DIGEST_INVALID', 'nothing is stored by sha512');
  assert.equal(readDigest(`sha512:${'a'.repeat(128)}`), undefined, 'a read of a sha512 digest names nothing here (404)');
  assert.equal(code(() => readDigest(`sha512:${'a'.repeat(64)}`)), 'DIGEST_INVALID', 'a sha512 digest of the wrong length');
  assert.equal(code(() => readDigest(`md5:${'a'.repeat(32)}`)), 'DIGEST_INVALID', 'an algorithm the spec does not register');
  assert.equal(readReference(`sha512:${'b'.repeat(128)}`), undefined);
  assert.equal(code(() => parseDigest(`sha256:${hex.toUpperCase()}`)), 'DIGEST_INVALID');
  assert.equal(code(() => parseDigest('sha256:abc')), 'DIGEST_INVALID');
  assert.deepEqual(parseReference('v1.0_rc-1'), { tag: 'v1.0_rc-1' });
  assert.deepEqual(parseReference(`sha256:${hex}`), { sha256: hex });
  assert.equal(code(() => parseReference('-bad')), 'MANIFEST_INVALID');
  assert.equal(code(() => parseReference('a'.repeat(129))), 'MANIFEST_INVALID');
});

test('manifests: what they refer to; a wrong or unknown type, a bad descriptor is MANIFEST_INVALID', () => {
  const d = (n: string) => ({ mediaType: 'x', digest: `sha256:${n.repeat(64)}`, size: 1 });
  const foreign = { ...d('3'), mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', urls: ['https://example.com/layer'] };
  const image = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: d('c'), layers: [d('1'), d('2'), foreign], subject: d('5'), annotations: { a: 'b' } };
  const refs = readManifest(Buffer.from(JSON.stringify(image)), 'application/vnd.oci.image.manifest.v1+json');
  assert.deepEqual(refs.blobs, ['c'.repeat(64), '1'.repeat(64), '2'.repeat(64)], 'a non-distributable layer is not required here');
  assert.equal(refs.subject, '5'.repeat(64));
  assert.equal(refs.artifactType, 'x', 'the config media type when no artifactType');
  const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [d('a'), d('b')] };
  assert.deepEqual(readManifest(Buffer.from(JSON.stringify(index)), undefined).manifests, ['a'.repeat(64), 'b'.repeat(64)]);
  const docker = { schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config: d('c'), layers: [] };
  assert.equal(readManifest(Buffer.from(JSON.stringify(docker)), 'application/vnd.docker.distribution.manifest.v2+json').mediaType, docker.mediaType);
  for (const [body, type] of [
    ['not json', 'application/vnd.oci.image.manifest.v1+json'],
    [JSON.stringify(image), 'application/vnd.oci.image.index.v1+json'],
    [JSON.stringify({ ...image, layers: [{ digest: 'sha256:zz', size: 1 }] }), undefined],
    [JSON.stringify({ ...image, layers: [{ digest: `sha256:${hex}` }] }), undefined],
    [JSON.stringify({ ...image, schemaVersion: 1 }), undefined],
    [JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-unknown' }), undefined],
    ['[]', 'application/vnd.oci.image.manifest.v1+json'],
  ] as const) {
    assert.notEqual(code(() => readManifest(Buffer.from(body), type)), 'no error', `${body.slice(0, 60)} as ${type}`);
  }
});

test('pages: n after last, and whether more follow', () => {
  const tags = ['a', 'b', 'c', 'd'];
  assert.deepEqual(page(tags, (t) => t, 2, undefined), { items: ['a', 'b'], more: true });
  assert.deepEqual(page(tags, (t) => t, 2, 'b'), { items: ['c', 'd'], more: false });
  assert.deepEqual(page(tags, (t) => t, undefined, 'c'), { items: ['d'], more: false });
  assert.deepEqual(page(tags, (t) => t, 0, undefined), { items: [], more: true });
});

test('tokens: signed by this key, for their scopes, until they expire; anything else is no token', () => {
  const key = tokenKey('-----BEGIN PRIVATE KEY-----\nA\n-----END PRIVATE KEY-----\n');
  const other = tokenKey('another key');
  const grant = { subject: 'ci', access: { 'myorg/app': ['pull' as const, 'push' as const] }, expiresAt: Date.now() + 60_000 };
  const token = signToken(key, grant);
  assert.deepEqual(verifyToken(key, token), grant);
  assert.equal(verifyToken(other, token), undefined, 'another server\'s key');
  assert.equal(verifyToken(key, token, grant.expiresAt + 1), undefined, 'expired');
  const [payload] = token.split('.');
  const forged = Buffer.from(JSON.stringify({ s: 'ci', a: { '*': ['push'] }, e: grant.expiresAt })).toString('base64url');
  assert.equal(verifyToken(key, token.replace(payload!, forged)), undefined, 'a changed payload');
  for (const junk of ['', '.', 'a.b.c', token + 'x']) assert.equal(verifyToken(key, junk), undefined, junk);
  assert.deepEqual(parseScopes(['repository:myorg/app:pull,push', 'repository:b:pull repository:c:*', 'registry:catalog:*']), { 'myorg/app': ['pull', 'push'], b: ['pull'], c: ['pull', 'push', 'delete'] });
  assert.deepEqual(basicCredentials(`Basic ${Buffer.from('ci:pa:ss').toString('base64')}`), { user: 'ci', password: 'pa:ss' });
  assert.equal(basicCredentials('Bearer x'), undefined);
});

test('the fingerprint Incus shows: sha256 of the layers\' digests one after another; an index\'s platforms', () => {
  const [a, b] = ['a'.repeat(64), 'b'.repeat(64)];
  assert.equal(incusFingerprint([a, b]), createHash('sha256').update(`sha256:${a}sha256:${b}`).digest('hex'));
  assert.notEqual(incusFingerprint([a, b]), incusFingerprint([b, a]), 'order matters');
  const index = { manifests: [{ digest: `sha256:${a}`, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } }, { digest: `sha256:${b}` }] };
  assert.deepEqual([...indexPlatforms(Buffer.from(JSON.stringify(index)))], [[a, 'linux/arm/v7']]);
  assert.deepEqual([...indexPlatforms(Buffer.from('not json'))], []);
});
