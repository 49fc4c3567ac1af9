/**
 * The OCI Distribution API over HTTPS, the parts real pull clients skip: the challenge and the
 * token endpoint, uploads in chunks (`Content-Range`, 416 out of order, the session's status),
 * monolithic uploads, cross-repository mounts (one file for both), manifests by tag and digest
 * kept byte-exact, a manifest naming a blob the repository lacks, tags with pagination, the
 * referrers API, ranges, deletes and the spec's error envelope; and garbage collection, which
 * leaves whatever a tag, a manifest or a link holds and takes a blob once nothing does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { capturingLogger, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { fetchRaw, type Response } from '../helpers/http.ts';

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const digest = (data: Buffer | string) => `sha256:${sha(data)}`;
const errorCode = (r: Response) => (JSON.parse(r.body.toString()) as { errors: { code: string }[] }).errors[0]!.code;

test('registry protocol: tokens, chunked and whole uploads, mounts, manifests, tags, referrers, deletes, errors', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const password = (await wharfOk(data, ['oci', 'user', 'add', 'ci', '--push', 'team/*'])).trim();
  // Logging every request (a line per request, as in production): answers given before a body
  // was read (401, 413) leave requests detached from their socket when the line is written.
  const logs = capturingLogger();
  const server = await serve(t, data, { processes: 1, log: logs.log });
  const call = (method: string, path: string, options: { body?: Buffer | string; headers?: Record<string, string> } = {}) =>
    fetchRaw(server.base + path, { ca: server.tls.cert, method, ...(options.body !== undefined ? { body: options.body } : {}), headers: options.headers ?? {} });

  // /v2/ challenges a client without a token; the token endpoint grants pull to anyone, push to the user.
  const base = await call('GET', '/v2/');
  assert.equal(base.status, 401);
  assert.match(String(base.headers['www-authenticate']), /^Bearer realm="https:\/\/127\.0\.0\.1:\d+\/v2\/token",service="wharf"$/);
  assert.equal(errorCode(base), 'UNAUTHORIZED');
  const tokenFor = async (scope: string, credentials?: string) => {
    const r = await call('GET', `/v2/token?service=wharf&scope=${encodeURIComponent(scope)}`, credentials ? { headers: { authorization: `Basic ${Buffer.from(credentials).toString('base64')}` } } : {});
    assert.equal(r.status, 200, r.body.toString());
    const body = JSON.parse(r.body.toString()) as { token: string; expires_in: number; issued_at: string };
    assert.ok(body.expires_in >= 60 && !Number.isNaN(Date.parse(body.issued_at)));
    return body.token;
  };
  assert.equal((await call('GET', '/v2/token?scope=repository:team/a:push', { headers: { authorization: `Basic ${Buffer.from('ci:wrong').toString('base64')}` } })).status, 401, 'wrong password');
  const anonymous = await tokenFor('repository:team/a:pull,push');
  const auth = { authorization: `Bearer ${await tokenFor('repository:team/a:pull,push,delete repository:team/b:pull,push,delete', `ci:${password}`)}` };
  assert.equal((await call('GET', '/v2/', { headers: auth })).status, 200);
  assert.equal((await call('GET', '/v2/', { headers: { authorization: `Bearer ${anonymous}` } })).status, 200, 'an anonymous token is a token');
  const refusedAnon = await call('POST', '/v2/team/a/blobs/uploads/', { headers: { authorization: `Bearer ${anonymous}` } });
  assert.equal(refusedAnon.status, 401, 'anonymous push');
  assert.match(String(refusedAnon.headers['www-authenticate']), /,scope="repository:team\/a:pull,push"$/, 'the challenge names the scope to ask for');
  const outside = await call('POST', '/v2/other/a/blobs/uploads/', { headers: auth });
  assert.equal(outside.status, 401, 'a token without that scope');
  const basicOutside = await call('POST', '/v2/other/a/blobs/uploads/', { headers: { authorization: `Basic ${Buffer.from(`ci:${password}`).toString('base64')}` } });
  assert.equal(basicOutside.status, 403);
  assert.equal(errorCode(basicOutside), 'DENIED');

  // A chunked upload: 202s with Location and Range, a chunk out of order is 416, the status, the end.
  const layer = Buffer.from('layer bytes '.repeat(5000));
  const started = await call('POST', '/v2/team/a/blobs/uploads/', { headers: auth });
  assert.equal(started.status, 202);
  const location = String(started.headers.location);
  assert.match(location, /^\/v2\/team\/a\/blobs\/uploads\/[^/]+$/);
  const first = await call('PATCH', location, { headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': `0-${19_999}` }, body: layer.subarray(0, 20_000) });
  assert.equal(first.status, 202, first.body.toString());
  assert.equal(first.headers.range, '0-19999');
  const skipped = await call('PATCH', location, { headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': `30000-39999` }, body: layer.subarray(30_000, 40_000) });
  assert.equal(skipped.status, 416);
  assert.equal((await call('GET', location, { headers: auth })).headers.range, '0-19999', 'the 416 wrote nothing');
  const lastOutOfOrder = await call('PUT', `${location}?digest=${digest(layer)}`, { headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': `30000-${layer.length - 1}` }, body: layer.subarray(30_000) });
  assert.equal(lastOutOfOrder.status, 416, 'a closing chunk out of order too');
  const wrongEnd = await call('PUT', `${location}?digest=${digest('something else')}`, { headers: { ...auth, 'content-type': 'application/octet-stream' }, body: layer.subarray(20_000) });
  assert.equal(wrongEnd.status, 400);
  assert.equal(errorCode(wrongEnd), 'DIGEST_INVALID');
  // Streamed as real clients do: one PATCH without Content-Range, then an empty PUT.
  const streamed = await call('POST', '/v2/team/a/blobs/uploads/', { headers: auth });
  await call('PATCH', String(streamed.headers.location), { headers: { ...auth, 'content-type': 'application/octet-stream' }, body: layer });
  const done = await call('PUT', `${streamed.headers.location}?digest=${digest(layer)}`, { headers: auth });
  assert.equal(done.status, 201, done.body.toString());
  assert.equal(done.headers['docker-content-digest'], digest(layer));
  assert.equal(done.headers.location, `/v2/team/a/blobs/${digest(layer)}`);

  // Reads: HEAD, GET, a range; another repository does not have it until mounted.
  const head = await call('HEAD', `/v2/team/a/blobs/${digest(layer)}`);
  assert.deepEqual([head.status, head.headers['content-length'], head.headers['docker-content-digest']], [200, String(layer.length), digest(layer)]);
  const range = await call('GET', `/v2/team/a/blobs/${digest(layer)}`, { headers: { range: 'bytes=10-19' } });
  assert.deepEqual([range.status, range.body.toString()], [206, layer.subarray(10, 20).toString()]);
  assert.equal((await call('GET', `/v2/team/b/blobs/${digest(layer)}`)).status, 404);
  const mounted = await call('POST', `/v2/team/b/blobs/uploads/?mount=${digest(layer)}&from=team/a`, { headers: auth });
  assert.equal(mounted.status, 201);
  assert.equal((await call('GET', `/v2/team/b/blobs/${digest(layer)}`)).body.length, layer.length);
  const stored = async () => (await readdir(join(data, 'blobs', 'sha256'), { recursive: true })).filter((p) => p.includes(sha(layer)));
  assert.equal((await stored()).length, 1, 'one file for both repositories');

  // A monolithic upload of the config; a manifest naming a blob the repository lacks is refused.
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  assert.equal((await call('POST', `/v2/team/a/blobs/uploads/?digest=${digest(config)}`, { headers: { ...auth, 'content-type': 'application/octet-stream' }, body: config })).status, 201);
  const descriptor = (b: Buffer, mediaType: string) => ({ mediaType, digest: digest(b), size: b.length });
  const manifestOf = (layers: Buffer[], extra: object = {}) =>
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: descriptor(config, 'application/vnd.oci.image.config.v1+json'), layers: layers.map((l) => descriptor(l, 'application/vnd.oci.image.layer.v1.tar')), ...extra }, null, 3));
  const putManifest = (repo: string, ref: string, body: Buffer, type = 'application/vnd.oci.image.manifest.v1+json') => call('PUT', `/v2/${repo}/manifests/${ref}`, { headers: { ...auth, 'content-type': type }, body });
  const missing = await putManifest('team/a', 'v1', manifestOf([layer, Buffer.from('never pushed')]));
  assert.equal(missing.status, 400);
  assert.equal(errorCode(missing), 'MANIFEST_BLOB_UNKNOWN');
  assert.equal((await call('GET', '/v2/team/a/manifests/v1')).status, 404, 'nothing kept of it');

  const manifest = manifestOf([layer]);
  const put = await putManifest('team/a', 'v1', manifest);
  assert.equal(put.status, 201, put.body.toString());
  assert.equal(put.headers['docker-content-digest'], digest(manifest));
  for (const ref of ['v1', digest(manifest)]) {
    const got = await call('GET', `/v2/team/a/manifests/${ref}`);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(manifest), 'byte-exact, whitespace and all');
    assert.equal(got.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(got.headers['docker-content-digest'], digest(manifest));
  }
  assert.equal((await putManifest('team/a', digest(manifestOf([]) /* another */), manifest)).status, 400, 'a digest that is not the body\'s');
  const oversized = await putManifest('team/a', 'big', Buffer.concat([manifest, Buffer.alloc(4 * 1024 * 1024)]));
  assert.equal(oversized.status, 400);

  // Tags with pagination.
  for (const tag of ['v2', 'v3', 'latest']) assert.equal((await putManifest('team/a', tag, manifest)).status, 201);
  const all = JSON.parse((await call('GET', '/v2/team/a/tags/list')).body.toString()) as { name: string; tags: string[] };
  assert.deepEqual(all, { name: 'team/a', tags: ['latest', 'v1', 'v2', 'v3'] });
  const firstPage = await call('GET', '/v2/team/a/tags/list?n=2');
  assert.deepEqual((JSON.parse(firstPage.body.toString()) as { tags: string[] }).tags, ['latest', 'v1']);
  assert.equal(firstPage.headers.link, '</v2/team/a/tags/list?n=2&last=v1>; rel="next"');
  assert.deepEqual((JSON.parse((await call('GET', '/v2/team/a/tags/list?n=2&last=v1')).body.toString()) as { tags: string[] }).tags, ['v2', 'v3']);
  assert.equal(errorCode(await call('GET', '/v2/team/none/tags/list')), 'NAME_UNKNOWN');

  // Referrers: an artifact whose subject is the manifest.
  const signature = Buffer.from('a signature');
  assert.equal((await call('POST', `/v2/team/a/blobs/uploads/?digest=${digest(signature)}`, { headers: { ...auth, 'content-type': 'application/octet-stream' }, body: signature })).status, 201);
  const artifact = manifestOf([signature], { artifactType: 'application/vnd.example.signature', subject: descriptor(manifest, 'application/vnd.oci.image.manifest.v1+json') });
  const referring = await putManifest('team/a', digest(artifact), artifact);
  assert.equal(referring.headers['oci-subject'], digest(manifest));
  const referrersAnswer = await call('GET', `/v2/team/a/referrers/${digest(manifest)}`);
  assert.equal(referrersAnswer.headers['content-type'], 'application/vnd.oci.image.index.v1+json', 'exactly: no charset');
  const referrers = JSON.parse(referrersAnswer.body.toString()) as { manifests: { digest: string; artifactType: string }[] };
  assert.deepEqual(referrers.manifests.map((m) => [m.digest, m.artifactType]), [[digest(artifact), 'application/vnd.example.signature']]);
  assert.deepEqual((JSON.parse((await call('GET', `/v2/team/a/referrers/${digest(manifest)}?artifactType=other`)).body.toString()) as { manifests: unknown[] }).manifests, []);

  // Hostile names and digests answer the spec's errors.
  assert.equal(errorCode(await call('GET', '/v2/team%2Fa/tags/list')), 'NAME_INVALID');
  assert.equal(errorCode(await call('GET', `/v2/team/a/blobs/sha512:${'a'.repeat(128)}`)), 'BLOB_UNKNOWN', 'nothing here has a sha512 digest');
  assert.equal(errorCode(await call('GET', `/v2/team/a/blobs/sha256:${'a'.repeat(12)}`)), 'DIGEST_INVALID');
  assert.equal(errorCode(await call('GET', `/v2/team/a/blobs/${digest('nothing')}`)), 'BLOB_UNKNOWN');
  assert.equal(errorCode(await call('GET', '/v2/team/a/manifests/nope')), 'MANIFEST_UNKNOWN');
  assert.equal(errorCode(await call('PATCH', '/v2/team/a/blobs/uploads/no-such-upload', { headers: { ...auth, 'content-type': 'application/octet-stream' }, body: 'x' })), 'BLOB_UPLOAD_UNKNOWN');

  // Deletes: a tag, then the manifest (its other tags go with it); the layer stays while team/b links it.
  assert.equal((await call('DELETE', '/v2/team/a/manifests/v3', { headers: auth })).status, 202);
  assert.equal((await call('GET', '/v2/team/a/manifests/v3')).status, 404);
  assert.equal((await call('DELETE', `/v2/team/a/manifests/${digest(manifest)}`, { headers: auth })).status, 202);
  assert.deepEqual((JSON.parse((await call('GET', '/v2/team/a/tags/list')).body.toString()) as { tags: string[] }).tags, []);
  assert.equal((await call('DELETE', `/v2/team/a/blobs/${digest(layer)}`, { headers: auth })).status, 202);
  await wharfOk(data, ['prune'], { env: { WHARF_GRACE_PERIOD: '0' } });
  assert.equal((await stored()).length, 1, 'team/b still links the layer');
  assert.equal((await call('GET', `/v2/team/b/blobs/${digest(layer)}`)).status, 200);
  assert.equal((await call('DELETE', `/v2/team/b/blobs/${digest(layer)}`, { headers: auth })).status, 202);
  await wharfOk(data, ['prune'], { env: { WHARF_GRACE_PERIOD: '0' } });
  assert.deepEqual(await stored(), [], 'collected once nothing holds it');
  assert.ok(logs.records.some((r) => r.msg === 'request' && r.status === 400 && String(r.path).endsWith('/manifests/big')), 'the refused oversized manifest has its line');
});

test('registry_private: a private repository is its users\' to pull, and listed nowhere', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const owner = (await wharfOk(data, ['oci', 'user', 'add', 'owner', '--push', 'secret/*'])).trim();
  const stranger = (await wharfOk(data, ['oci', 'user', 'add', 'stranger', '--push', 'team/*'])).trim();
  await writeFile(join(data, 'config.yaml'), 'registry_private: [secret/*]\n');
  const server = await serve(t, data, { processes: 1 });
  const call = (method: string, path: string, headers: Record<string, string> = {}, body?: Buffer) => fetchRaw(server.base + path, { ca: server.tls.cert, method, headers, ...(body ? { body } : {}) });
  const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
  const bearer = async (scope: string, credentials?: Record<string, string>) => ({ authorization: `Bearer ${JSON.parse((await call('GET', `/v2/token?service=wharf&scope=${scope}`, credentials)).body.toString()).token}` });

  const ownerToken = await bearer('repository:secret/app:pull,push', basic('owner', owner));
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  assert.equal((await call('POST', `/v2/secret/app/blobs/uploads/?digest=${digest(config)}`, { ...ownerToken, 'content-type': 'application/octet-stream' }, config)).status, 201);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest(config), size: config.length }, layers: [] }));
  assert.equal((await call('PUT', '/v2/secret/app/manifests/1', { ...ownerToken, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, manifest)).status, 201);

  assert.equal((await call('GET', '/v2/secret/app/manifests/1', ownerToken)).status, 200, 'its user pulls');
  assert.equal((await call('GET', '/v2/secret/app/manifests/1', basic('owner', owner))).status, 200, 'with Basic too');
  const anonymous = await call('GET', '/v2/secret/app/manifests/1');
  assert.equal(anonymous.status, 401);
  assert.match(String(anonymous.headers['www-authenticate']), /^Bearer realm=/);
  assert.equal((await call('GET', '/v2/secret/app/manifests/1', await bearer('repository:secret/app:pull'))).status, 401, 'an anonymous token has no pull of it');
  assert.equal((await call('GET', `/v2/secret/app/blobs/${digest(config)}`, await bearer('repository:secret/app:pull', basic('stranger', stranger)))).status, 401, "another user's token neither");
  assert.equal((await call('GET', '/v2/secret/app/tags/list', basic('stranger', stranger))).status, 403);
  for (const listing of ['/v2/_catalog', '/catalogue/v1/registry.json']) {
    assert.ok(!(await call('GET', listing, ownerToken)).body.toString().includes('secret/app'), `${listing} names no private repository`);
  }
});

test('an upload abandoned half-way: nothing of it left once upload_ttl passed and collection ran', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const password = (await wharfOk(data, ['oci', 'user', 'add', 'ci', '--push', 'team/*'])).trim();
  await writeFile(join(data, 'config.yaml'), 'upload_ttl: 1\n');
  const server = await serve(t, data, { processes: 1 });
  const auth = { authorization: `Basic ${Buffer.from(`ci:${password}`).toString('base64')}` };
  const started = await fetchRaw(`${server.base}/v2/team/a/blobs/uploads/`, { ca: server.tls.cert, method: 'POST', headers: auth });
  const location = String(started.headers.location);
  const patched = await fetchRaw(server.base + location, { ca: server.tls.cert, method: 'PATCH', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: Buffer.alloc(100_000, 7) });
  assert.equal(patched.status, 202);
  const staging = join(data, 'blobs', 'staging');
  assert.notDeepEqual(await readdir(staging), [], 'the half upload is staged');
  await new Promise((r) => setTimeout(r, 1_500));
  await wharfOk(data, ['prune']);
  assert.deepEqual(await readdir(staging), [], 'nothing left after the TTL');
  const resumed = await fetchRaw(server.base + location, { ca: server.tls.cert, method: 'PATCH', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: 'more' });
  assert.equal(resumed.status, 404);
  assert.equal(errorCode(resumed), 'BLOB_UPLOAD_UNKNOWN');
});

test('a pull-through cache logs in to its upstream with registry_credentials, and only with them', async (t) => {
  const work = await tempDir(t);
  // The upstream: another wharf whose repository is private.
  const upData = join(work, 'upstream');
  const upPassword = (await wharfOk(upData, ['oci', 'user', 'add', 'mirror-bot', '--push', 'secret/*'])).trim();
  await writeFile(join(upData, 'config.yaml'), 'registry_private: [secret/*]\n');
  const upstream = await serve(t, upData, { processes: 1 });
  const upAuth = { authorization: `Basic ${Buffer.from(`mirror-bot:${upPassword}`).toString('base64')}` };
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  await fetchRaw(`${upstream.base}/v2/secret/app/blobs/uploads/?digest=${digest(config)}`, { ca: upstream.tls.cert, method: 'POST', headers: { ...upAuth, 'content-type': 'application/octet-stream' }, body: config });
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest(config), size: config.length }, layers: [] }));
  assert.equal((await fetchRaw(`${upstream.base}/v2/secret/app/manifests/1`, { ca: upstream.tls.cert, method: 'PUT', headers: { ...upAuth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest })).status, 201);
  await writeFile(join(work, 'upstream.crt'), upstream.tls.cert);

  const cacheWith = async (name: string, credentials: string) => {
    const data = join(work, name);
    await wharfOk(data, ['oci', 'remote', 'add', 'up', upstream.base, '--certificate', join(work, 'upstream.crt')]);
    await writeFile(join(data, 'config.yaml'), credentials);
    return serve(t, data, { processes: 1 });
  };
  const without = await cacheWith('anonymous', '');
  const refused = await fetchRaw(`${without.base}/v2/up/secret/app/manifests/1`, { ca: without.tls.cert });
  assert.equal(refused.status, 502, 'the upstream refuses an anonymous cache');
  const logged = await cacheWith('logged', `registry_credentials:\n  up: { username: mirror-bot, password: "${upPassword}" }\n`);
  const got = await fetchRaw(`${logged.base}/v2/up/secret/app/manifests/1`, { ca: logged.tls.cert });
  assert.equal(got.status, 200, got.body.toString());
  assert.ok(got.body.equals(manifest));
  // Its clients pull anonymously: the cache's repositories are its own, public unless made private.
  assert.equal((await fetchRaw(`${logged.base}/v2/up/secret/app/blobs/${digest(config)}`, { ca: logged.tls.cert })).body.toString(), config.toString());
});
