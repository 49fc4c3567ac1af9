/**
 * The OCI registry judged by the tools Incus runs (Incus 6.0 refuses `--protocol=oci`; 6.3 and
 * later run these, with these arguments): skopeo 1.9 pushes a multi-platform image with a
 * registry user's credentials (and nothing without them, nor outside the user's repositories),
 * `skopeo --insecure-policy inspect docker://HOST/REPO [--no-tags]` and `skopeo --insecure-policy
 * copy docker://HOST/REPO --remove-signatures oci:DIR:latest` pull it anonymously over HTTPS with
 * the certificate trusted as Incus hosts trust it (certs.d), and `umoci unpack --keep-dirlinks`
 * unpacks this host's platform. A blob whose bytes miss its digest is refused and not kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildOciLayout } from '../fixtures/oci.ts';
import { runProcess, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { trustForContainers } from '../helpers/containers-trust.ts';

const missing = ['skopeo', 'umoci'].map((tool) => (spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0 ? undefined : `${tool} is not installed (Debian package ${tool})`)).find(Boolean);
const hostArch = process.arch === 'arm64' ? 'arm64' : 'amd64';

test('skopeo pushes with credentials, then inspects and copies anonymously as Incus runs it; umoci unpacks', { skip: !process.env.CI && missing }, async (t) => {
  if (missing) assert.fail(`interop tests must run in CI: ${missing}`);
  const work = await tempDir(t);
  const data = join(work, 'data');
  const password = (await wharfOk(data, ['oci', 'user', 'add', 'ci', '--push', 'myorg/*'])).trim();
  const server = await serve(t, data, { processes: 1 });
  // As on an Incus host: the registry's CA where containers/image looks for it.
  const host = await trustForContainers(t, server);
  const skopeo = (args: string[]) => runProcess('skopeo', args, { timeoutMs: 120_000 });
  const layout = await buildOciLayout(join(work, 'layout'), { files: { 'etc/motd': 'pushed through wharf\n' } });

  // Pushes: refused anonymously and outside the user's globs; accepted with the user's password.
  const anonymous = await skopeo(['--insecure-policy', 'copy', '--all', `oci:${layout.dir}:latest`, `docker://${host}/myorg/app:latest`]);
  assert.notEqual(anonymous.code, 0, 'an anonymous push is refused');
  const elsewhere = await skopeo(['--insecure-policy', 'copy', '--all', '--dest-creds', `ci:${password}`, `oci:${layout.dir}:latest`, `docker://${host}/other/app:latest`]);
  assert.notEqual(elsewhere.code, 0, 'a push outside the user\'s repositories is refused');
  assert.match(elsewhere.stderr, /denied|DENIED|not authorized|unauthorized/i);
  const pushed = await skopeo(['--insecure-policy', 'copy', '--all', '--dest-creds', `ci:${password}`, `oci:${layout.dir}:latest`, `docker://${host}/myorg/app:latest`]);
  assert.equal(pushed.code, 0, pushed.stderr);

  // What Incus 7.1 runs on alias lookup, then what 6.3 to 7.0 run (listing tags).
  const inspected = await skopeo(['--insecure-policy', 'inspect', `docker://${host}/myorg/app`, '--no-tags']);
  assert.equal(inspected.code, 0, inspected.stderr);
  const info = JSON.parse(inspected.stdout) as { Digest: string; Architecture: string; Layers: string[] };
  assert.equal(info.Architecture, hostArch);
  assert.deepEqual(info.Layers, [layout.images[hostArch]!.layer.digest]);
  const withTags = await skopeo(['--insecure-policy', 'inspect', `docker://${host}/myorg/app`]);
  assert.equal(withTags.code, 0, withTags.stderr);
  assert.deepEqual((JSON.parse(withTags.stdout) as { RepoTags: string[] }).RepoTags, ['latest']);

  // The download and unpack Incus does (the daemon, as root).
  const pulled = join(work, 'pulled');
  await mkdir(pulled);
  const copied = await skopeo(['--insecure-policy', 'copy', `docker://${host}/myorg/app`, '--remove-signatures', `oci:${join(pulled, 'oci')}:latest`]);
  assert.equal(copied.code, 0, copied.stderr);
  const unpacked = await runProcess('umoci', ['unpack', '--keep-dirlinks', '--image', join(pulled, 'oci'), join(pulled, 'image')]);
  assert.equal(unpacked.code, 0, unpacked.stderr);
  assert.equal(await readFile(join(pulled, 'image', 'rootfs', 'etc', 'wharf-arch'), 'utf8'), `${hostArch}\n`);
  assert.equal(await readFile(join(pulled, 'image', 'rootfs', 'etc', 'motd'), 'utf8'), 'pushed through wharf\n');

  // The index and every manifest are kept byte-exact: the digests clients pinned still hold.
  const index = await fetchRaw(`${server.base}/v2/myorg/app/manifests/latest`, { ca: server.tls.cert, headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
  assert.equal(index.status, 200);
  assert.equal(index.headers['docker-content-digest'], layout.index.digest);
  assert.equal(index.headers['content-type'], 'application/vnd.oci.image.index.v1+json');

  // The catalogue lists the repository, its tag, each platform with the fingerprint Incus shows.
  const catalogue = JSON.parse((await fetchRaw(`${server.base}/catalogue/v1/registry.json`, { ca: server.tls.cert })).body.toString()) as {
    repositories: { name: string; tags: { tag: string; digest: string; platforms: { platform: string; fingerprint: string }[] }[] }[];
  };
  const listed = catalogue.repositories.find((r) => r.name === 'myorg/app')!;
  assert.equal(listed.tags[0]!.digest, layout.index.digest);
  const host64 = listed.tags[0]!.platforms.find((p) => p.platform === `linux/${hostArch}`)!;
  assert.equal(host64.fingerprint, createHash('sha256').update(layout.images[hostArch]!.layer.digest).digest('hex'), 'sha256 of "sha256:LAYER" for a one-layer image');

  // Sneakernet: exported as an OCI layout skopeo reads, imported again (every byte checked), pulled.
  const carried = join(work, 'carried');
  // The index, two manifests, two configs, two layers.
  assert.match(await wharfOk(data, ['oci', 'export', carried, 'myorg/app:latest']), /^Exported 1 images: 7 blobs/);
  const fromLayout = await skopeo(['--insecure-policy', 'inspect', `oci:${carried}:latest`]);
  assert.equal(fromLayout.code, 0, fromLayout.stderr);
  assert.equal((JSON.parse(fromLayout.stdout) as { Architecture: string }).Architecture, hostArch);
  await wharfOk(data, ['oci', 'import', carried, '--repository', 'myorg/copy']);
  const copyHead = await fetchRaw(`${server.base}/v2/myorg/copy/manifests/latest`, { ca: server.tls.cert, method: 'HEAD', headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
  assert.equal(copyHead.headers['docker-content-digest'], layout.index.digest, 'the same index, byte for byte');
  const tamperedLayer = join(carried, 'blobs', 'sha256', layout.images[hostArch]!.layer.digest.slice('sha256:'.length));
  const layerBytes = await readFile(tamperedLayer);
  layerBytes.writeUInt8(layerBytes.readUInt8(10) ^ 1, 10);
  await writeFile(tamperedLayer, layerBytes);
  const refusedImport = await wharf(data, ['oci', 'import', carried, '--repository', 'myorg/tampered']);
  assert.notEqual(refusedImport.code, 0);
  assert.match(refusedImport.stderr, /sha256/);
  assert.equal((await fetchRaw(`${server.base}/v2/myorg/tampered/manifests/latest`, { ca: server.tls.cert })).status, 404, 'nothing of a tampered layout is tagged');
  const repositories = JSON.parse((await fetchRaw(`${server.base}/catalogue/v1/registry.json`, { ca: server.tls.cert })).body.toString()) as { repositories: { name: string }[] };
  assert.ok(!repositories.repositories.some((r) => r.name === 'myorg/tampered'), 'nor linked: the registry is as it was');

  // A blob whose bytes miss the digest it was pushed as: refused, and nothing of it kept.
  const token = JSON.parse((await fetchRaw(`${server.base}/v2/token?service=wharf&scope=repository:myorg/app:pull,push`, { ca: server.tls.cert, headers: { authorization: `Basic ${Buffer.from(`ci:${password}`).toString('base64')}` } })).body.toString()).token as string;
  const before = (await readdir(join(data, 'blobs', 'sha256'), { recursive: true })).length;
  const lie = await fetchRaw(`${server.base}/v2/myorg/app/blobs/uploads/?digest=sha256:${'0'.repeat(64)}`, { ca: server.tls.cert, method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body: 'not what the digest says' });
  assert.equal(lie.status, 400);
  assert.equal((JSON.parse(lie.body.toString()) as { errors: { code: string }[] }).errors[0]!.code, 'DIGEST_INVALID');
  assert.equal((await readdir(join(data, 'blobs', 'sha256'), { recursive: true })).length, before, 'nothing kept');
});
