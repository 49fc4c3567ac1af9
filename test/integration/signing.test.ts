/**
 * Signed indexes: `wharf key` makes the server publish `.gpg` and `.sjson` beside its index, which
 * GnuPG verifies with the exported key; remotes added with `--gpg-key` and mirrors with an origin
 * key believe an index only with a valid signature.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, runProcess, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';

type Context = Parameters<typeof tempDir>[0];

/** A GnuPG home of its own, holding `publicKey`; gpg(args) runs in it. */
async function gnupg(t: Context, publicKey?: string) {
  const home = await mkdtemp(join(tmpdir(), 'wharf-gpg-'));
  const env = { ...process.env, GNUPGHOME: home };
  // The agent is started here, detached from our pipes: one that gpg starts itself inherits them,
  // and a run would never be seen to end.
  spawnSync('gpgconf', ['--launch', 'gpg-agent'], { env, stdio: 'ignore' });
  t.after(async () => {
    spawnSync('gpgconf', ['--kill', 'gpg-agent'], { env, stdio: 'ignore' });
    await rm(home, { recursive: true, force: true });
  });
  const gpg = (args: string[], stdin?: string) => runProcess('gpg', ['--batch', '--no-tty', ...args], { env, ...(stdin !== undefined ? { stdin } : {}) });
  if (publicKey) {
    const imported = await gpg(['--import'], publicKey);
    assert.equal(imported.code, 0, imported.stderr);
  }
  return { home, gpg };
}

async function importImage(work: string, data: string, os: string) {
  const meta = await buildMetadataTarball(work, { name: `${os}.tar.xz`, properties: { os, release: '1', architecture: 'amd64' } });
  const root = await buildSquashfs(work, { name: `${os}.squashfs`, seed: os });
  return fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, root.path, '--alias', os.toLowerCase()]));
}

test('with a key, the index is published signed (.gpg and .sjson) for every client view, and re-signed on each change', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  await importImage(work, data, 'Signed');
  const generated = await wharfOk(data, ['key', 'generate', '--name', 'Test signer', '--email', 'signer@example.org']);
  const fingerprint = /Signing key ([0-9A-F]{40})/.exec(generated)?.[1];
  assert.ok(fingerprint, generated);
  const { gpg } = await gnupg(t, await wharfOk(data, ['key', 'export']));
  const server = await serve(t, data);

  const get = async (path: string, userAgent: string) => (await fetchRaw(`${server.base}/${path}`, { ca: server.tls.cert, headers: { 'user-agent': userAgent } })).body;
  const verifyAll = async (userAgent: string, root = '') => {
    const bodies: Record<string, Buffer> = {};
    for (const doc of ['index', 'images']) {
      const json = await get(`${root}streams/v1/${doc}.json`, userAgent);
      const detached = await get(`${root}streams/v1/${doc}.json.gpg`, userAgent);
      const clear = await get(`${root}streams/v1/${doc}.sjson`, userAgent);
      await writeFile(join(work, `${doc}.json`), json);
      await writeFile(join(work, `${doc}.json.gpg`), detached);
      await writeFile(join(work, `${doc}.sjson`), clear);
      const good = await gpg(['--status-fd', '1', '--verify', join(work, `${doc}.json.gpg`), join(work, `${doc}.json`)]);
      assert.equal(good.code, 0, `${userAgent} ${doc}.json.gpg: ${good.stderr}`);
      assert.match(good.stdout, new RegExp(`VALIDSIG ${fingerprint}`));
      const clearOk = await gpg(['--status-fd', '1', '--yes', '--output', join(work, `${doc}.out`), '--decrypt', join(work, `${doc}.sjson`)]);
      assert.equal(clearOk.code, 0, `${userAgent} ${doc}.sjson: ${clearOk.stderr}`);
      assert.match(clearOk.stdout, new RegExp(`VALIDSIG ${fingerprint}`));
      const signedJson = JSON.parse(await readFile(join(work, `${doc}.out`), 'utf8'));
      const served = JSON.parse(json.toString());
      // index.sjson names the signed product document (images.sjson), which the simplestreams
      // tools then fetch and verify in turn; otherwise the same document as index.json.
      if (doc === 'index') served.index.images.path = 'streams/v1/images.sjson';
      assert.deepEqual(signedJson, served, `${doc}.sjson holds the same document`);
      bodies[doc] = json;
    }
    return bodies;
  };
  const before = await verifyAll('LXD 5.0.2 (Linux; x86_64; 6.1; Debian; 12)');
  await verifyAll('Incus 6.0.4 (Linux; x86_64; 6.1; Debian; 12)');

  // Every channel's root and every private view's index is signed alike.
  const daily = await buildMetadataTarball(work, { name: 'daily.tar.xz', properties: { os: 'Daily', release: '1', architecture: 'amd64' } });
  await wharfOk(data, ['image', 'import', daily.path, (await buildSquashfs(work, { name: 'daily.squashfs', seed: 'daily' })).path, '--channel', 'daily', '--private']);
  await wharfOk(data, ['image', 'import', (await buildMetadataTarball(work, { name: 'dpub.tar.xz', properties: { os: 'Dpub', release: '1', architecture: 'amd64' } })).path, (await buildSquashfs(work, { name: 'dpub.squashfs', seed: 'dpub' })).path, '--channel', 'daily']);
  await wharfOk(data, ['view', 'add', 'tenant', '--channel', 'daily']);
  const view = new URL((await wharfOk(data, ['view', 'token', 'add', 'tenant', '--url', server.base])).trim()).pathname.slice(1) + '/';
  for (let i = 0; i < 50 && !(await get(`${view}streams/v1/images.json`, 'curl/8')).toString().includes('daily'); i++) await new Promise((r) => setTimeout(r, 100));
  assert.match((await verifyAll('curl/8', view)).images!.toString(), /daily/, 'the view lists its private image, signed');
  assert.match((await verifyAll('Incus 6.0.4 (Linux; x86_64; 6.1; Debian; 12)', 'daily/')).images!.toString(), /dpub/);

  // A change: the new index is signed again, and the old signature does not cover it.
  const oldSignature = await get('streams/v1/images.json.gpg', 'curl/8');
  await importImage(work, data, 'Later');
  let after = before.images!;
  for (let i = 0; i < 50 && after.equals(before.images!); i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = await get('streams/v1/images.json', 'curl/8');
  }
  assert.match(after.toString(), /later/);
  await verifyAll('curl/8');
  await writeFile(join(work, 'stale.gpg'), oldSignature);
  await writeFile(join(work, 'images.json'), after);
  assert.notEqual((await gpg(['--verify', join(work, 'stale.gpg'), join(work, 'images.json')])).code, 0, 'an old signature does not verify a new index');
});

test('key import takes a GnuPG key without a passphrase, and refuses what cannot sign unattended', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  assert.equal((await wharf(data, ['key', 'export'])).code, 66, 'no key yet');
  const { gpg } = await gnupg(t);
  assert.equal((await gpg(['--passphrase', '', '--quick-gen-key', 'Imported <imported@example.org>', 'ed25519', 'sign', 'never'])).code, 0);
  const listed = await gpg(['--with-colons', '--list-keys']);
  const gpgFingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(listed.stdout)?.[1];
  const secret = await gpg(['--armor', '--export-secret-keys']);
  await writeFile(join(work, 'secret.asc'), secret.stdout);
  assert.match(await wharfOk(data, ['key', 'import', join(work, 'secret.asc')]), new RegExp(`Signing key ${gpgFingerprint} imported`));
  assert.equal((await wharf(data, ['key', 'generate'])).code, 73, 'a key is not replaced silently');
  assert.match(await wharfOk(data, ['key', 'generate', '--force']), /Signing key [0-9A-F]{40}/);

  const publicOnly = await gpg(['--armor', '--export']);
  await writeFile(join(work, 'public.asc'), publicOnly.stdout);
  const refusedPublic = await wharf(data, ['key', 'import', '--force', join(work, 'public.asc')]);
  assert.equal(refusedPublic.code, 64);
  assert.match(refusedPublic.stderr, /private key/);

  const locked = await gnupg(t);
  await locked.gpg(['--pinentry-mode', 'loopback', '--passphrase', 'secret', '--quick-gen-key', 'Locked', 'ed25519', 'sign', 'never']);
  const lockedKey = await locked.gpg(['--pinentry-mode', 'loopback', '--passphrase', 'secret', '--armor', '--export-secret-keys']);
  await writeFile(join(work, 'locked.asc'), lockedKey.stdout);
  const refusedLocked = await wharf(data, ['key', 'import', '--force', join(work, 'locked.asc')]);
  assert.equal(refusedLocked.code, 64);
  assert.match(refusedLocked.stderr, /passphrase/);
});

test('a remote added with --gpg-key is used only with an index signed by that key; so is a mirror origin with origin_key', async (t) => {
  const work = await tempDir(t);
  const originData = join(work, 'origin');
  const fp = await importImage(work, originData, 'Trusted');
  await wharfOk(originData, ['key', 'generate']);
  await writeFile(join(work, 'origin.asc'), await wharfOk(originData, ['key', 'export']));
  const strangerData = join(work, 'stranger');
  await wharfOk(strangerData, ['key', 'generate']);
  await writeFile(join(work, 'stranger.asc'), await wharfOk(strangerData, ['key', 'export']));
  const origin = await serve(t, originData, { processes: 1 });
  const unsignedData = join(work, 'unsigned');
  await importImage(work, unsignedData, 'Trusted');
  const unsigned = await serve(t, unsignedData, { processes: 1 });
  assert.equal((await fetchRaw(`${unsigned.base}/streams/v1/index.json.gpg`, { ca: unsigned.tls.cert })).status, 404, 'no key, no signatures');

  const consumer = join(work, 'consumer');
  await wharfOk(consumer, ['remote', 'add', 'good', origin.base, '--certificate', origin.tls.certPath, '--gpg-key', join(work, 'origin.asc')]);
  await wharfOk(consumer, ['remote', 'add', 'wrong', origin.base, '--certificate', origin.tls.certPath, '--gpg-key', join(work, 'stranger.asc')]);
  await wharfOk(consumer, ['remote', 'add', 'bare', unsigned.base, '--certificate', unsigned.tls.certPath, '--gpg-key', join(work, 'origin.asc')]);
  const remotes = JSON.parse(await wharfOk(consumer, ['remote', 'list', '--format', 'json'])) as { name: string; signed: boolean }[];
  assert.equal(remotes.find((r) => r.name === 'good')?.signed, true);
  const notKey = await wharf(consumer, ['remote', 'add', 'junk', origin.base, '--gpg-key', join(work, 'origin', 'wharf.db')]);
  assert.equal(notKey.code, 64);

  const wrong = await wharf(consumer, ['image', 'copy', 'wrong:trusted']);
  assert.equal(wrong.code, 76);
  assert.match(wrong.stderr, /signature .* does not verify/);
  const bare = await wharf(consumer, ['image', 'copy', 'bare:trusted']);
  assert.equal(bare.code, 76);
  assert.match(bare.stderr, /must be signed/);
  await wharfOk(consumer, ['mirror', 'add', 'm', 'wrong']);
  assert.notEqual((await wharf(consumer, ['mirror', 'sync'])).code, 0);
  assert.deepEqual(JSON.parse(await wharfOk(consumer, ['image', 'list', '--format', 'json'])), [], 'nothing came from an index that failed its check');
  assert.match(await wharfOk(consumer, ['image', 'copy', 'good:trusted']), new RegExp(fp.slice(0, 12)));
  // A key file of several armored blocks (cat stranger.asc origin.asc): the second key counts too.
  await writeFile(join(work, 'both.asc'), (await readFile(join(work, 'stranger.asc'), 'utf8')) + (await readFile(join(work, 'origin.asc'), 'utf8')));
  await wharfOk(consumer, ['remote', 'add', 'both', origin.base, '--certificate', origin.tls.certPath, '--gpg-key', join(work, 'both.asc')]);
  await wharfOk(consumer, ['image', 'delete', fp]);
  assert.match(await wharfOk(consumer, ['image', 'copy', 'both:trusted']), new RegExp(fp.slice(0, 12)));

  // Mirror mode: with the right key the origin's files are served; with another, none is.
  const fileOf = async () => {
    const doc = JSON.parse((await fetchRaw(`${origin.base}/streams/v1/images.json`, { ca: origin.tls.cert })).body.toString());
    const items = Object.values(doc.products).flatMap((p: any) => Object.values(p.versions).flatMap((v: any) => Object.values(v.items))) as { path: string }[];
    return items[0]!.path;
  };
  const path = await fileOf();
  const goodMirror = await serve(t, join(work, 'mirror-good'), { mirrorOf: origin.base, originCertificate: origin.tls.certPath, originKey: join(work, 'origin.asc') });
  assert.equal((await fetchRaw(`${goodMirror.base}/${path}`, { ca: goodMirror.tls.cert })).status, 200);
  const wrongMirror = await serve(t, join(work, 'mirror-wrong'), { mirrorOf: origin.base, originCertificate: origin.tls.certPath, originKey: join(work, 'stranger.asc') });
  const refused = await fetchRaw(`${wrongMirror.base}/${path}`, { ca: wrongMirror.tls.cert });
  assert.equal(refused.status, 502, 'an index it cannot trust is no index');
  assert.match(JSON.parse(refused.body.toString()).error, /has not read its origin's index yet \(The signature of .* does not verify/);
});

test('signing_key: replicas sign with one key file kept outside their data directories', async (t) => {
  const work = await tempDir(t);
  await wharfOk(join(work, 'keeper'), ['key', 'generate', '--name', 'Shared key']);
  const keyFile = join(work, 'signing.asc');
  await writeFile(keyFile, await readFile(join(work, 'keeper', 'signing-key.asc'), 'utf8'), { mode: 0o600 });
  const exported = await wharfOk(join(work, 'keeper'), ['key', 'export']);
  const replica = join(work, 'replica');
  assert.equal(await wharfOk(replica, ['key', 'export'], { env: { WHARF_SIGNING_KEY: keyFile } }), exported, 'the replica signs with the shared key');
  const unified = await buildUnified(work, { seed: 'shared-key' });
  await wharfOk(replica, ['image', 'import', unified.path]);
  await writeFile(join(replica, 'config.yaml'), `signing_key: ${keyFile}\n`);
  const server = await serve(t, replica);
  const index = await fetchRaw(`${server.base}/streams/v1/index.json`, { ca: server.tls.cert });
  const signature = await fetchRaw(`${server.base}/streams/v1/index.json.gpg`, { ca: server.tls.cert });
  assert.equal(signature.status, 200);
  await writeFile(join(work, 'index.json'), index.body);
  await writeFile(join(work, 'index.json.gpg'), signature.body);
  await writeFile(join(work, 'shared.asc'), exported);
  const gnupg = join(work, 'gnupg');
  await mkdir(gnupg, { mode: 0o700 });
  await runProcess('gpg', ['--homedir', gnupg, '--batch', '--import', join(work, 'shared.asc')]);
  const verified = await runProcess('gpg', ['--homedir', gnupg, '--batch', '--verify', join(work, 'index.json.gpg'), join(work, 'index.json')]);
  assert.equal(verified.code, 0, verified.stderr);
  const missing = await wharf(join(work, 'other'), ['key', 'export'], { env: { WHARF_SIGNING_KEY: join(work, 'nowhere.asc') } });
  assert.equal(missing.code, 78, 'a key file named but missing is a configuration error');
});
