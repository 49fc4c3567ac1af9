import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { certificateFingerprint, isFingerprintPrefix, isSha256 } from '../../src/domain/fingerprint.ts';
import { matchesProperty } from '../../src/domain/property-filter.ts';
import { parseDuration } from '../../src/domain/duration.ts';
import { aliasesOf, type Alias } from '../../src/domain/image.ts';
import { artifactSha } from '../../src/core/publish.ts';
import { loadTlsIdentity } from '../../src/tls.ts';
import { isAppError } from '../../src/errors.ts';
import { imageRecord } from '../helpers/image-record.ts';
import { tempDir } from '../helpers/env.ts';

const sha = 'ab'.repeat(32);

test('a sha256 is exactly 64 lowercase hex digits; a fingerprint prefix is 1 to 64 of them', () => {
  assert.ok(isSha256(sha));
  for (const bad of [sha.toUpperCase(), sha.slice(1), `${sha}0`, ` ${sha}`, `${sha}\n`, 'g'.repeat(64), '']) assert.equal(isSha256(bad), false, JSON.stringify(bad));
  assert.ok(isFingerprintPrefix('a'));
  assert.ok(isFingerprintPrefix(sha));
  assert.equal(isFingerprintPrefix(''), false);
  assert.equal(isFingerprintPrefix(`${sha}0`), false);
  assert.equal(isFingerprintPrefix('ABC'), false);
  assert.equal(isFingerprintPrefix('abcde', 6), false);
  assert.ok(isFingerprintPrefix('abcdef', 6));
});

test('artifact paths name a sha256, with or without an extension', () => {
  assert.equal(artifactSha(`files/${sha}.tar.xz`), sha);
  assert.equal(artifactSha(`files/${sha}`), sha);
  for (const bad of [`files/${sha.slice(1)}.tar.xz`, `files/${sha.toUpperCase()}`, `files/x/${sha}`, `${sha}.tar.xz`, `files/${sha}.TAR`]) assert.equal(artifactSha(bad), undefined, bad);
});

test('a certificate fingerprint is the sha256 of its DER form', async (t) => {
  const tls = await loadTlsIdentity({ dataDir: await tempDir(t) });
  const cert = new X509Certificate(tls.cert);
  assert.equal(certificateFingerprint(cert), createHash('sha256').update(cert.raw).digest('hex'));
  assert.equal(tls.fingerprint, certificateFingerprint(cert));
});

test('the aliases of an image are those that name its fingerprint', () => {
  const alias = (name: string, fingerprint: string): Alias => ({ name, fingerprint, description: '', type: 'container' });
  const all = [alias('a', sha), alias('b', 'cd'.repeat(32)), alias('c', sha)];
  assert.deepEqual(aliasesOf(all, sha).map((a) => a.name), ['a', 'c']);
  assert.deepEqual(aliasesOf(all, 'ef'.repeat(32)), []);
});

test('KEY=VALUE filters: properties, any spelling of the architecture, type, public, fingerprint', () => {
  const image = imageRecord({ fingerprint: sha, public: false, properties: { os: 'Debian', architecture: 'amd64', release: '12' } });
  assert.ok(matchesProperty(image, 'os', 'debian'));
  assert.ok(matchesProperty(image, 'properties.os', 'DEBIAN'));
  assert.equal(matchesProperty(image, 'os', 'ubuntu'), false);
  assert.equal(matchesProperty(image, 'variant', ''), false, 'a missing property matches nothing');
  for (const arch of ['x86_64', 'amd64', 'AMD64']) assert.ok(matchesProperty(image, 'architecture', arch), arch);
  assert.equal(matchesProperty(image, 'architecture', 'aarch64'), false);
  assert.ok(matchesProperty(image, 'type', 'container'));
  assert.ok(matchesProperty(image, 'public', 'false'));
  assert.ok(matchesProperty(image, 'fingerprint', sha.toUpperCase()));
  // Remote images have no visibility of their own: "public" is then an ordinary property.
  const { public: _public, ...remote } = { ...image, properties: { public: 'yes' } };
  assert.ok(matchesProperty(remote, 'public', 'yes'));
});

test('durations: whole numbers of s, m, h or d; seconds by default', () => {
  assert.equal(parseDuration('90'), 90);
  assert.equal(parseDuration('90s'), 90);
  assert.equal(parseDuration(' 15m '), 900);
  assert.equal(parseDuration('6 h'), 21600);
  assert.equal(parseDuration('2d'), 172800);
  for (const bad of ['', 'h', '1.5h', '-1s', '3w', '6hours']) {
    assert.throws(() => parseDuration(bad), (err) => isAppError(err, 'invalid_argument'), bad);
  }
});
