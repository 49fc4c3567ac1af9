/**
 * Where containers/image (skopeo, podman, buildah, and so Incus's OCI remotes) looks for a
 * registry's CA: /etc/containers/certs.d/HOST:PORT/ca.crt. A test server's certificate goes there
 * for the test, and out again after it.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Trusts the server's certificate for containers tools; its `HOST:PORT`, as image references name it. */
export async function trustForContainers(t: { after(fn: () => Promise<void>): void }, server: { base: string; tls: { cert: string } }): Promise<string> {
  const host = new URL(server.base).host;
  const dir = join('/etc/containers/certs.d', host);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'ca.crt'), server.tls.cert);
  t.after(() => rm(dir, { recursive: true, force: true }));
  return host;
}
