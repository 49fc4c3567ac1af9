/** Who may read /metrics: loopback, the metrics_allow networks and trusted clients; nobody else. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { baseApp } from '../../src/http/app.ts';
import { operationsRoutes } from '../../src/http/operations.ts';
import { silentLogger } from '../../src/log.ts';

async function appWith(metricsAllow: string[], trusted = false) {
  const { app } = baseApp(silentLogger);
  operationsRoutes(app, {
    ready: () => true,
    metrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'wharf_up 1\n' }),
    metricsAllow,
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
