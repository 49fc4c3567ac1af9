/** Which certificates the catalogue shows a fingerprint for: self-signed ones only. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadTlsIdentity, selfSigned } from '../../src/tls.ts';
import { runProcess, tempDir } from '../helpers/env.ts';

test('selfSigned: wharf\'s own certificate is, one an authority signed is not', async (t) => {
  const dir = await tempDir(t);
  const own = await loadTlsIdentity({ dataDir: dir });
  assert.equal(selfSigned(own.cert), true);

  const openssl = async (args: string[]) => {
    const r = await runProcess('openssl', args);
    assert.equal(r.code, 0, r.stderr);
  };
  const ca = join(dir, 'ca');
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-subj', '/CN=Test CA', '-days', '2']);
  await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'leaf.key'), '-out', join(dir, 'leaf.csr'), '-subj', '/CN=images.example.org']);
  await openssl(['x509', '-req', '-in', join(dir, 'leaf.csr'), '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', join(dir, 'leaf.crt'), '-days', '2']);
  const leaf = await readFile(join(dir, 'leaf.crt'), 'utf8');
  assert.equal(selfSigned(leaf), false);
  assert.equal(selfSigned(leaf + (await readFile(`${ca}.crt`, 'utf8'))), false, 'a chain file: its first certificate decides');
});
