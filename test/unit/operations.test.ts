/**
 * Who may read /metrics: loopback, the metrics_allow networks and trusted clients; nobody else,
 * also when a proxy relays the request from loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { baseApp } from '../../src/http/app.ts';
import { operationsRoutes } from '../../src/http/operations.ts';
import { silentLogger } from '../../src/log.ts';

async function appWith(metricsAllow: string[], trusted = false, trustedProxies: string[] = [], metricsAccess: 'checked' | 'open' | 'elsewhere' = 'checked') {
  const { app } = baseApp(silentLogger);
  operationsRoutes(app, {
    ready: () => true,
    metrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'wharf_up 1\n' }),
    metricsAccess,
    metricsAllow,
    trustedProxies,
    trustedClient: async () => trusted,
  });
  await app.ready();
  return app;
}

test('/metrics answers loopback and metrics_allow, refuses anyone else with 403', async () => {
  const app = await appWith(['192.0.2.0/24', '2001:db8::/32']);
  const from = async (remoteAddress: string) => (await app.inject({ url: '/metrics', remoteAddress })).statusCode;
  assert.equal(await from('127.0.0.1'), 200);
  assert.equal(await from('::1'), 200);
  assert.equal(await from('::ffff:127.0.0.1'), 200);
  assert.equal(await from('192.0.2.77'), 200);
  assert.equal(await from('2001:db8::5'), 200);
  assert.equal(await from('198.51.100.1'), 403);
  assert.equal(await from('2001:db9::1'), 403);
  const refused = await app.inject({ url: '/metrics', remoteAddress: '198.51.100.1' });
  assert.doesNotMatch(refused.body, /wharf_up/);
  // Health answers everyone: load balancers probe from anywhere.
  assert.equal((await app.inject({ url: '/healthz', remoteAddress: '198.51.100.1' })).statusCode, 200);
});

test('/metrics answers a client with a trusted certificate from anywhere', async () => {
  const app = await appWith([], true);
  assert.equal((await app.inject({ url: '/metrics', remoteAddress: '198.51.100.1' })).statusCode, 200);
});

test('/metrics behind a reverse proxy on the same host: judged by the client it relays, and only a trusted proxy may name one', async () => {
  // The README's setup: nginx on the same host relays every request from 127.0.0.1.
  const open = await appWith(['192.0.2.0/24']);
  const relayed = async (app: Awaited<ReturnType<typeof appWith>>, headers: Record<string, string>) => (await app.inject({ url: '/metrics', remoteAddress: '127.0.0.1', headers })).statusCode;
  const relays: Record<string, string>[] = [{ 'x-forwarded-for': '198.51.100.1' }, { forwarded: 'for=198.51.100.1' }, { 'x-real-ip': '198.51.100.1' }, { 'x-forwarded-for': '127.0.0.1' }];
  for (const headers of relays) {
    assert.equal(await relayed(open, headers), 403, `${JSON.stringify(headers)}: the proxy is not trusted, so nobody it relays is`);
  }
  const behindProxy = await appWith(['192.0.2.0/24'], false, ['127.0.0.1/32']);
  assert.equal(await relayed(behindProxy, { 'x-forwarded-for': '198.51.100.1' }), 403, 'an outside client through the trusted proxy');
  assert.equal(await relayed(behindProxy, { 'x-forwarded-for': '192.0.2.9' }), 200, 'a metrics_allow client through the trusted proxy');
  assert.equal(await relayed(behindProxy, { 'x-forwarded-for': '192.0.2.9, unknown' }), 403, 'a chain broken by an entry that is no address');
  assert.equal(await relayed(behindProxy, { forwarded: 'for=192.0.2.9' }), 403, 'only X-Forwarded-For names the client');
  assert.equal((await behindProxy.inject({ url: '/metrics', remoteAddress: '127.0.0.1' })).statusCode, 200, 'the host itself, not relayed');
});

test('with metrics_listen, the serving ports answer no /metrics and the listener of its own answers anyone', async () => {
  const serving = await appWith([], true, [], 'elsewhere');
  assert.equal((await serving.inject({ url: '/metrics', remoteAddress: '127.0.0.1' })).statusCode, 404);
  assert.equal((await serving.inject({ url: '/healthz', remoteAddress: '127.0.0.1' })).statusCode, 200);
  const own = await appWith([], false, [], 'open');
  assert.equal((await own.inject({ url: '/metrics', remoteAddress: '198.51.100.1' })).statusCode, 200);
});
