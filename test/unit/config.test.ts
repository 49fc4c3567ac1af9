import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig, parseAddress } from '../../src/config.ts';
import { listenLimits } from '../../src/http/listen.ts';
import { isAppError } from '../../src/errors.ts';
import { tempDir } from '../helpers/env.ts';

test('settings: flags beat environment beat config.yaml beat defaults', async (t) => {
  const dir = await tempDir(t);
  assert.equal((await loadConfig(dir, {}, {})).https, '[::]:8443');
  await writeFile(join(dir, 'config.yaml'), 'https: 127.0.0.1:9000\ngrace_period: 60\n');
  const fromFile = await loadConfig(dir, {}, {});
  assert.equal(fromFile.https, '127.0.0.1:9000');
  assert.equal(fromFile.gracePeriod, 60);
  assert.equal((await loadConfig(dir, {}, { WHARF_HTTPS: '127.0.0.1:9001' })).https, '127.0.0.1:9001');
  assert.equal((await loadConfig(dir, { https: '127.0.0.1:9002' }, { WHARF_HTTPS: '127.0.0.1:9001' })).https, '127.0.0.1:9002');
});

test('settings in seconds also take a duration with a unit', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'config.yaml'), 'grace_period: 15m\nheaders_timeout: 45\n');
  const config = await loadConfig(dir, {}, { WHARF_AUTO_UPDATE_INTERVAL: '2d' });
  assert.equal(config.gracePeriod, 900);
  assert.equal(config.headersTimeout, 45);
  assert.equal(config.autoUpdateInterval, 172800);
  assert.equal((await loadConfig(dir, { gracePeriod: '6h' }, {})).gracePeriod, 21600);
  assert.equal((await loadConfig(dir, {}, { WHARF_GRACE_PERIOD: '90s' })).gracePeriod, 90);
});

test('connection settings reach the listeners', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'config.yaml'), 'headers_timeout: 20\nbody_timeout: 2m\nmax_connections_per_address: 8\n');
  const limits = listenLimits(await loadConfig(dir, {}, { WHARF_MAX_CONNECTIONS: '500' }));
  const { connections, ...timeouts } = limits;
  assert.deepEqual(timeouts, { headersTimeoutMs: 20_000, bodyTimeoutMs: 120_000 });
  assert.deepEqual({ perAddress: connections?.perAddress, total: connections?.total }, { perAddress: 8, total: 500 });
  assert.equal(listenLimits(await loadConfig(dir, {}, {})).connections?.total, 10_000, 'a bound by default');
});

test('settings: mistakes are clear errors at start', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'config.yaml'), 'htps: 1\n');
  await assert.rejects(loadConfig(dir, {}, {}), /unknown setting "htps"/);
  await writeFile(join(dir, 'config.yaml'), 'https: [oops\n');
  await assert.rejects(loadConfig(dir, {}, {}), /not valid YAML/);
  await writeFile(join(dir, 'config.yaml'), '');
  await assert.rejects(loadConfig(dir, { https: 'nowhere' }, {}), /option --https: "nowhere" is not an address of the form HOST:PORT/);
  await assert.rejects(loadConfig(dir, {}, { WHARF_GRACE_PERIOD: '-5' }), (err) => isAppError(err, 'config') && /WHARF_GRACE_PERIOD: "-5" is not a duration/.test(err.message) && /15m/.test(err.hint ?? ''));
  await assert.rejects(loadConfig(dir, { headersTimeout: 1.5 }, {}), /option --headers-timeout: 1.5 is not a whole number of seconds/);
  // A regional mirror of a private view would send every client to the view's index, token and all.
  const view = `https://origin.example/views/acme/wvt_0123456789ab_${'ab'.repeat(32)}`;
  await assert.rejects(loadConfig(dir, { mirrorOf: view }, {}), (err) => isAppError(err, 'config') && /not a private view's/.test(err.message) && !err.message.includes('abab'));
  await assert.rejects(loadConfig(dir, { tlsCert: 'a.pem' }, {}), /tls_cert and tls_key must be given together/);
  assert.deepEqual(parseAddress('[::1]:8443'), { host: '::1', port: 8443 });
  assert.deepEqual(parseAddress(':8443'), { host: '::', port: 8443 });
  assert.equal(parseAddress('host:99999'), undefined);
});

test('release_aliases: a mapping in config.yaml, checked at start', async (t) => {
  const dir = await tempDir(t);
  assert.deepEqual((await loadConfig(dir, {}, {})).releaseAliases, {});
  await writeFile(join(dir, 'config.yaml'), 'release_aliases:\n  debian:\n    bookworm: [12, stable]\n  rocky:\n    "9": blue-onyx\n');
  assert.deepEqual((await loadConfig(dir, {}, {})).releaseAliases, { debian: { bookworm: [12, 'stable'] }, rocky: { '9': 'blue-onyx' } });
  await writeFile(join(dir, 'config.yaml'), 'release_aliases: [debian]\n');
  await assert.rejects(loadConfig(dir, {}, {}), /release_aliases: must map an OS to its releases/);
  await writeFile(join(dir, 'config.yaml'), 'release_aliases:\n  debian:\n    bookworm: "12/x"\n');
  await assert.rejects(loadConfig(dir, {}, {}), (err) => isAppError(err, 'config') && /debian\.bookworm: names are single words/.test(err.message));
});

test('the sample config (contrib/config.yaml) loads, with its commented keys turned on too', async (t) => {
  const sample = await readFile(join(import.meta.dirname, '..', '..', 'contrib', 'config.yaml'), 'utf8');
  const dir = await tempDir(t);
  await writeFile(join(dir, 'config.yaml'), sample);
  const plain = await loadConfig(dir, {}, {});
  assert.equal(plain.https, '[::]:8443');
  assert.equal(plain.countDownloads, true);
  // Every commented setting is valid once uncommented (all but mirror mode, which its own lines switch on).
  await writeFile(join(dir, 'config.yaml'), sample.replace(/^# (\w+:)/gm, '$1'));
  const all = await loadConfig(dir, {}, {});
  assert.equal(all.mirrorOf, 'https://images.example.org:8443');
  assert.deepEqual(all.testHooks, []);
  // The commented hook list, turned on with its items.
  await writeFile(join(dir, 'config.yaml'), sample.replace(/^# (test_hooks:)/m, '$1').replace(/^#(   ?[- ] ?\w+:.*)$/gm, '$1'));
  assert.deepEqual((await loadConfig(dir, {}, {})).testHooks, [{ name: 'boots', command: 'wharf test "$WHARF_IMAGE_FINGERPRINT"', timeoutSeconds: 600, retries: 1 }]);
  assert.deepEqual(all.trustedProxies, ['127.0.0.1/32', '::1']);
  assert.equal(all.cacheInactive, 3 * 86400);
});

test('blob_redirect: only over an s3:// blob store; its endpoint an http(s) URL without credentials', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(loadConfig(dir, { blobRedirect: 'true' }, {}), (err) => isAppError(err, 'config') && /blob_redirect needs an s3:\/\/ blob_store/.test(err.message));
  await assert.rejects(loadConfig(dir, { blobRedirect: 'true', blobStore: '/srv/blobs' }, {}), (err) => isAppError(err, 'config'));
  const s3 = await loadConfig(dir, { blobRedirect: 'true', blobStore: 's3://images', blobRedirectEndpoint: 'http://s3.internal:9000/' }, {});
  assert.equal(s3.blobRedirect, true);
  assert.equal(s3.blobRedirectEndpoint, 'http://s3.internal:9000');
  for (const bad of ['https://key:secret@s3.example.org', 'ftp://s3.example.org', 'https://s3.example.org/?x=1', 'not a url']) {
    await assert.rejects(loadConfig(dir, { blobStore: 's3://images', blobRedirectEndpoint: bad }, {}), (err) => isAppError(err, 'config') && /blob_redirect_endpoint|--blob-redirect-endpoint/.test(err.message), bad);
  }
});
