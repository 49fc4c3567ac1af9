/**
 * The OCI registry judged by podman 4.3 and buildah 1.28 (Debian's), over HTTPS with the
 * certificate trusted in certs.d: `podman login` with a registry user, `podman push`, a `buildah
 * commit` straight to the registry, and anonymous `podman pull`s into a fresh store that end with
 * the digests that were pushed. Each tool runs with its own storage (vfs) in the test's directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { buildOciLayout } from '../fixtures/oci.ts';
import { runProcess, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { trustForContainers } from '../helpers/containers-trust.ts';

const missing = ['podman', 'buildah'].map((tool) => (spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0 ? undefined : `${tool} is not installed (Debian package ${tool})`)).find(Boolean);

test('podman logs in, pushes and pulls; buildah commits straight to the registry', { skip: !process.env.CI && missing }, async (t) => {
  if (missing) assert.fail(`interop tests must run in CI: ${missing}`);
  const work = await tempDir(t);
  const data = join(work, 'data');
  const password = (await wharfOk(data, ['oci', 'user', 'add', 'builder', '--push', 'apps/*'])).trim();
  const server = await serve(t, data, { processes: 1 });
  // As on an Incus host: the registry's CA where containers/image looks for it.
  const host = await trustForContainers(t, server);

  /** A tool with storage of its own under the test's directory (`name`), as another host would have. */
  const tool = (command: 'podman' | 'buildah', name: string) => {
    const root = join(work, name);
    const global = ['--root', join(root, 'root'), '--runroot', join(root, 'run'), '--storage-driver', 'vfs'];
    return async (args: string[]) => {
      await mkdir(root, { recursive: true });
      await writeFile(join(root, 'auth.json'), '{}', { flag: 'wx' }).catch(() => {});
      const result = await runProcess(command, [...global, ...args], { timeoutMs: 180_000, env: { ...process.env, REGISTRY_AUTH_FILE: join(root, 'auth.json'), TMPDIR: work } });
      assert.equal(result.code, 0, `${command} ${args.join(' ')}: ${result.stderr}`);
      return result.stdout;
    };
  };
  // podman names an image pulled from a layout after its path, which must be lowercase then.
  const layoutDir = join(tmpdir(), `wharf-oci-${randomBytes(6).toString('hex')}`);
  t.after(() => rm(layoutDir, { recursive: true, force: true }));
  const layout = await buildOciLayout(layoutDir, { architectures: [process.arch === 'arm64' ? 'arm64' : 'amd64'] });

  // podman: login, push what it holds, pull it anonymously elsewhere.
  const pusher = tool('podman', 'pusher');
  await pusher(['pull', `oci:${layout.dir}:latest`]);
  await pusher(['login', host, '-u', 'builder', '-p', password]);
  const local = (await pusher(['images', '--format', '{{.ID}}'])).trim().split('\n')[0]!;
  await pusher(['push', local, `docker://${host}/apps/web:1.0`]);
  const head = await fetchRaw(`${server.base}/v2/apps/web/manifests/1.0`, { ca: server.tls.cert, method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' } });
  const digest = String(head.headers['docker-content-digest']);
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);

  const puller = tool('podman', 'puller');
  await puller(['pull', `${host}/apps/web:1.0`]);
  const pulled = JSON.parse(await puller(['image', 'inspect', `${host}/apps/web:1.0`])) as { Digest: string }[];
  assert.equal(pulled[0]!.Digest, digest, 'pulled the digest that was pushed');

  // A push outside the user's repositories is refused.
  const refused = await runProcess('podman', ['--root', join(work, 'pusher', 'root'), '--runroot', join(work, 'pusher', 'run'), '--storage-driver', 'vfs', 'push', local, `docker://${host}/other/web:1.0`], {
    timeoutMs: 120_000,
    env: { ...process.env, REGISTRY_AUTH_FILE: join(work, 'pusher', 'auth.json'), TMPDIR: work },
  });
  assert.notEqual(refused.code, 0);

  // buildah: an image from scratch with one file, committed to the registry with credentials.
  const builder = tool('buildah', 'builder');
  const container = (await builder(['from', 'scratch'])).trim();
  await writeFile(join(work, 'hello.txt'), 'built by buildah\n');
  await builder(['copy', container, join(work, 'hello.txt'), '/hello.txt']);
  await builder(['commit', '--creds', `builder:${password}`, container, `docker://${host}/apps/built:latest`]);
  const tags = JSON.parse((await fetchRaw(`${server.base}/v2/apps/built/tags/list`, { ca: server.tls.cert })).body.toString()) as { tags: string[] };
  assert.deepEqual(tags.tags, ['latest']);
  await puller(['pull', `${host}/apps/built:latest`]);
});
