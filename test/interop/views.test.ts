/**
 * Private views judged by the real clients: the URL `wharf view token add` prints works as is with
 * `incus remote add` and `lxc remote add`; they list and copy the view's private image, fetching
 * its files at capability URLs (plain HTTP first) that carry no token; an auto-updating copy
 * follows a promotion into the view's channel and rolls back on a demotion; a revoked token fails
 * at once for a client without a cached index. Over the LXD API, lxc with a certificate trusted
 * for one channel only lists and copies that channel's private image, no other, and changes nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import selfsigned from 'selfsigned';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { capturingLogger, fingerprintFrom, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { incusUnavailable, startIncus } from '../helpers/incus.ts';
import { lxdUnavailable, startLxd } from '../helpers/lxd.ts';
import { until } from '../helpers/until.ts';
import { fetchRaw } from '../helpers/http.ts';

const missing = incusUnavailable() ?? lxdUnavailable();

interface Listed {
  fingerprint: string;
  public: boolean;
  aliases: { name: string }[];
}

test('real incus and lxc use a private view URL as is: list, copy, refresh, roll back; revoked, it fails at once', { skip: !process.env.CI && missing }, async (t) => {
  if (missing) assert.fail(`interop tests must run in CI: ${missing}`);
  const work = await tempDir(t);
  const data = join(work, 'data');
  const build = async (serial: string, seed: string) =>
    [(await buildMetadataTarball(work, { name: `m-${seed}.tar.xz`, properties: { os: 'Tenant', release: '1', architecture: 'amd64', serial } })).path, (await buildSquashfs(work, { name: `r-${seed}.squashfs`, seed })).path];
  const v1 = fingerprintFrom(await wharfOk(data, ['image', 'import', ...(await build('20260101_00:00', 'v1')), '--channel', 'stable', '--private', '--property', 'tenant=acme']));
  // Another tenant's build of the same product, newer, in the same channel: a view that leaked it
  // would also offer it as acme's newest version.
  const hidden = fingerprintFrom(await wharfOk(data, ['image', 'import', ...(await build('20260102_00:00', 'other-tenant')), '--channel', 'stable', '--private', '--property', 'tenant=other']));
  await wharfOk(data, ['view', 'add', 'acme', '--channel', 'stable', '--filter', 'tenant=acme']);
  const logs = capturingLogger();
  const server = await serve(t, data, { processes: 1, log: logs.log });
  const url = (await wharfOk(data, ['view', 'token', 'add', 'acme', '--url', server.base])).trim();
  const secret = url.split('_').at(-1)!;
  const published = (fp: string, present: boolean) =>
    until(`${fp.slice(0, 12)} ${present ? 'in' : 'out of'} the view`, async () => ((await fetchRaw(`${url}/streams/v1/images.json`, { ca: server.tls.cert })).body.toString().includes(fp) === present ? true : undefined), 5_000);
  await published(v1, true);

  const incus = await startIncus(t, [server.tls.cert]);
  await incus.incusOk(['remote', 'add', 'acme', url, '--protocol=simplestreams']);
  const listed = await incus.incusJson<Listed[]>(['image', 'list', 'acme:']);
  assert.deepEqual(listed.map((i) => i.fingerprint), [v1], 'the private image of the view, not the other tenant');
  assert.ok(!listed.some((i) => i.fingerprint === hidden));

  // Copied by the daemon, auto-updating: its files come from capability URLs.
  await incus.incusOk(['image', 'copy', 'acme:tenant/1', 'local:', '--auto-update', '--alias', 'follows']);
  const local = async (alias: string) => (await incus.incusJson<Listed[]>(['image', 'list', 'local:'])).find((i) => i.aliases.some((a) => a.name === alias))?.fingerprint;
  assert.equal(await local('follows'), v1);

  // A new build promoted into the view's channel reaches the copy; demoted, the copy rolls back.
  const v2 = fingerprintFrom(await wharfOk(data, ['image', 'import', ...(await build('20260201_00:00', 'v2')), '--channel', 'daily', '--private', '--property', 'tenant=acme']));
  await wharfOk(data, ['image', 'promote', v2, '--channel', 'stable']);
  await published(v2, true);
  await incus.forgetIndexes();
  await incus.incusOk(['image', 'refresh', 'follows']);
  assert.equal(await local('follows'), v2, 'the promoted build reached the copy through the view');
  await wharfOk(data, ['image', 'demote', v2, '--channel', 'stable']);
  await published(v2, false);
  await incus.forgetIndexes();
  await incus.incusOk(['image', 'refresh', 'follows']);
  assert.equal(await local('follows'), v1, 'demoting the newest build rolled the copy back');

  // The real lxc, with the URL as printed.
  const lxd = await startLxd(t, [server.tls.cert]);
  await lxd.lxcOk(['remote', 'add', 'acme', url, '--protocol=simplestreams']);
  assert.deepEqual((await lxd.lxcJson<Listed[]>(['image', 'list', 'acme:'])).map((i) => i.fingerprint), [v1]);
  await lxd.lxcOk(['image', 'copy', 'acme:tenant/1', 'local:', '--alias', 'lxd-acme']);
  assert.equal((await lxd.lxcJson<Listed[]>(['image', 'list', 'local:'])).find((i) => i.aliases.some((a) => a.name === 'lxd-acme'))?.fingerprint, v1);

  // The same lxc with its certificate trusted over the LXD API for the channel stable only: it
  // lists and copies that channel's private image, never another channel's (v2 is in daily only).
  // (lxc makes its client certificate when it first needs one; given here, it uses this one.)
  const client = await selfsigned.generate([{ name: 'commonName', value: 'lxc-tenant' }], { keyType: 'ec' });
  await writeFile(join(lxd.env.LXD_CONF!, 'client.crt'), client.cert);
  await writeFile(join(lxd.env.LXD_CONF!, 'client.key'), client.private, { mode: 0o600 });
  await wharfOk(data, ['trust', 'add', join(lxd.env.LXD_CONF!, 'client.crt'), '--channel', 'stable']);
  await lxd.lxcOk(['remote', 'add', 'wapi', server.base, '--protocol=lxd']);
  const viaApi = (await lxd.lxcJson<Listed[]>(['image', 'list', 'wapi:'])).map((i) => i.fingerprint);
  assert.ok(viaApi.includes(v1) && !viaApi.includes(v2), `listed over the LXD API: ${viaApi}`);
  await lxd.lxcOk(['image', 'delete', 'local:lxd-acme']);
  await lxd.lxcOk(['image', 'copy', `wapi:${v1}`, 'local:', '--alias', 'restricted-copy']);
  assert.equal((await lxd.lxcJson<Listed[]>(['image', 'list', 'local:'])).find((i) => i.aliases.some((a) => a.name === 'restricted-copy'))?.fingerprint, v1);
  assert.notEqual((await lxd.lxc(['image', 'delete', `wapi:${v1}`])).code, 0, 'a restricted certificate changes nothing');
  assert.notEqual((await lxd.lxc(['image', 'info', `wapi:${v2}`])).code, 0);

  // Every file came from a URL without the token: the token's requests are index requests only.
  const requests = logs.records.filter((r) => r.msg === 'request').map((r) => ({ path: String(r.path), status: r.status }));
  const files = requests.filter((r) => r.path.startsWith('/views/acme/files/') && r.status === 200);
  assert.ok(files.length >= 4, `the daemons fetched the private files at capability URLs: ${JSON.stringify(requests.slice(-20))}`);
  for (const r of requests.filter((x) => x.path.includes('wvt_'))) assert.match(r.path, /^\/views\/acme\/wvt_[0-9a-f]{12}_REDACTED\/streams\/v1\/[a-z]+\.json$/);
  for (const r of logs.records) assert.ok(!JSON.stringify(r).includes(secret));

  // Revoked: a client without a cached index fails at once, both clients.
  await wharfOk(data, ['view', 'token', 'revoke', 'acme', '--all']);
  await until('the revocation is published', async () => ((await fetchRaw(`${url}/streams/v1/index.json`, { ca: server.tls.cert })).status === 404 ? true : undefined), 5_000);
  const fresh = await incus.newClient();
  await fresh.incusOk(['remote', 'add', 'acme', url, '--protocol=simplestreams']);
  const refused = await fresh.incus(['image', 'list', 'acme:']);
  assert.notEqual(refused.code, 0, `a revoked token lists nothing: ${refused.stdout}`);
  await incus.forgetIndexes();
  assert.notEqual((await incus.incus(['image', 'copy', 'acme:tenant/1', 'local:', '--alias', 'after-revoke'])).code, 0);
});
