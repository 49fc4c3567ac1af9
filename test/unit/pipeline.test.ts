/**
 * The pipeline's rules (domain/pipeline.ts, domain/webhooks.ts) and the webhook sender's hostile
 * cases (pipeline/webhooks.ts `deliver`): which builds a gate promotes, which events a change
 * makes, the webhooks' configuration, signature and backoff; a receiver that redirects, hangs or
 * is not there is a failed delivery, never followed or waited on past the timeout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { gateOf, imageEvents, promotableBuild, type StageState } from '../../src/domain/pipeline.ts';
import { checkWebhooks, retryDelayMs, webhookBody, webhookSignature } from '../../src/domain/webhooks.ts';
import { deliver } from '../../src/pipeline/webhooks.ts';
import type { Image } from '../../src/domain/image.ts';
import { imageRecord } from '../helpers/image-record.ts';

let n = 0;
const staged = (architecture: string, state: StageState, overrides: Partial<Image> = {}) =>
  imageRecord({
    fingerprint: (++n).toString(16).padStart(64, '0'),
    architecture,
    public: false,
    channels: ['staging'],
    properties: { os: 'debian', release: '12', variant: 'default', serial: '20261208_01:00' },
    stage: { state, at: '2026-12-08T01:00:00.000Z' },
    uploadedAt: '2026-12-08T01:00:00.000Z',
    ...overrides,
  });
const publishedAs = (architecture: string, serial: string) =>
  imageRecord({ fingerprint: (++n).toString(16).padStart(64, '0'), architecture, properties: { os: 'debian', release: '12', variant: 'default', serial } });
const now = Date.parse('2026-12-08T01:00:10.000Z');

test('gates: a build goes whole once every image passed and it has the architectures the channel has', () => {
  const published = [publishedAs('x86_64', '20261201_01:00'), publishedAs('aarch64', '20261201_01:00'), publishedAs('riscv64', '20261101_01:00')];
  const amd = staged('x86_64', 'passed');
  const arm = staged('aarch64', 'passed');
  assert.deepEqual(promotableBuild([amd, arm], published, true, 60_000, now), [amd, arm], 'complete: the newest published version had amd64 and arm64');
  assert.deepEqual(promotableBuild([amd], published, true, 60_000, now), [], 'arm64 still to come');
  assert.deepEqual(promotableBuild([amd], published, true, 5_000, now), [amd], 'waited long enough for it');
  assert.deepEqual(promotableBuild([amd, staged('aarch64', 'failed')], published, true, 0, now), [], 'one failed: none');
  assert.deepEqual(promotableBuild([amd, staged('aarch64', 'testing')], published, true, 0, now), [], 'one testing: none yet');
  assert.deepEqual(promotableBuild([amd, staged('aarch64', 'rejected')], published, true, 5_000, now), [amd], 'a rejected one leaves the rest');
  assert.deepEqual(promotableBuild([amd, arm], [], true, 60_000, now), [], 'a new family waits out the gate');
  assert.deepEqual(promotableBuild([staged('x86_64', 'uploaded')], published.slice(0, 1), false, 60_000, now).length, 1, 'without hooks, uploaded is ready');
  assert.deepEqual(promotableBuild([staged('x86_64', 'uploaded')], published.slice(0, 1), true, 60_000, now), [], 'with hooks, it must pass');
});

test('gates: nothing not passed is ever promoted, whatever the build (property)', () => {
  const states = fc.constantFrom<StageState>('uploaded', 'testing', 'passed', 'failed', 'promoted', 'rejected');
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('x86_64', 'aarch64', 'riscv64'), states), { maxLength: 6 }), fc.nat(100_000), (build, wait) => {
      const images = build.map(([arch, state]) => staged(arch, state));
      const chosen = promotableBuild(images, [], true, wait, now);
      assert.ok(chosen.every((i) => i.stage!.state === 'passed'));
      if (chosen.length) assert.ok(images.every((i) => ['passed', 'promoted', 'rejected'].includes(i.stage!.state)), 'all or nothing');
    }),
  );
});

test('gates: the default channel is automatic once hooks exist; a setting wins', () => {
  assert.equal(gateOf('default', null, true), 'auto');
  assert.equal(gateOf('default', null, false), 'manual');
  assert.equal(gateOf('stable', null, true), 'manual');
  assert.equal(gateOf('default', 'manual', true), 'manual');
  assert.equal(gateOf('stable', 'auto', false), 'auto');
});

test('events: what each change makes', () => {
  const before = staged('x86_64', 'testing');
  const types = (events: ReturnType<typeof imageEvents>) => events.map((e) => `${e.type}:${e.channel}`);
  assert.deepEqual(types(imageEvents(undefined, before, 'a', 't')), ['image.uploaded:staging']);
  assert.deepEqual(types(imageEvents(before, { ...before, stage: { state: 'failed', at: 't' } }, 'a', 't')), ['test.failed:staging']);
  assert.deepEqual(types(imageEvents(before, { ...before, channels: ['default', 'stable'], stage: { state: 'promoted', at: 't' } }, 'a', 't')), ['image.promoted:default', 'image.promoted:stable'], 'leaving staging by promotion is no demotion');
  const published = { ...before, channels: ['default'], stage: null };
  assert.deepEqual(types(imageEvents(published, { ...published, channels: [] }, 'a', 't')), ['image.demoted:default']);
  assert.deepEqual(types(imageEvents(published, { ...published, properties: { x: 'y' } }, 'a', 't')), [], 'an edit of other fields is no event');
  assert.deepEqual(types(imageEvents(published, undefined, 'a', 't')), ['image.pruned:default']);
});

test('webhooks: configuration is checked; the secret signs the exact body; backoff doubles to a cap', () => {
  const ok = checkWebhooks([{ name: 'ci', url: 'https://ci.example/hook', secret: 'x'.repeat(16), events: ['image.promoted'], timeout: '5s', attempts: 3 }], 'config.yaml: webhooks');
  assert.deepEqual(ok, [{ name: 'ci', url: 'https://ci.example/hook', secret: 'x'.repeat(16), events: ['image.promoted'], timeoutSeconds: 5, attempts: 3 }]);
  assert.equal(checkWebhooks([{ name: 'all', url: 'http://127.0.0.1:9/x', secret: 'y'.repeat(20) }], 'w')[0]!.events.length, 6, 'every event by default');
  for (const bad of [
    [{ name: 'ci', url: 'ftp://x/', secret: 'x'.repeat(16) }],
    [{ name: 'ci', url: 'https://x/', secret: 'short' }],
    [{ name: 'ci', url: 'https://x/', secret: 'x'.repeat(16), events: ['image.exploded'] }],
    [{ name: 'ci', url: 'https://x/', secret: 'x'.repeat(16), colour: 'red' }],
    [{ name: 'ci', url: 'https://x/', secret: 'x'.repeat(16) }, { name: 'ci', url: 'https://y/', secret: 'x'.repeat(16) }],
    'not a list',
  ]) {
    assert.throws(() => checkWebhooks(bad, 'config.yaml: webhooks'), /config\.yaml: webhooks/);
  }
  const event = { seq: 7, type: 'image.promoted' as const, at: 't', actor: 'wharf', channel: 'default', image: imageEvents(undefined, staged('x86_64', 'passed'), 'a', 't')[0]!.image };
  const body = webhookBody(event);
  assert.equal(webhookSignature('k'.repeat(16), body), `sha256=${createHmac('sha256', 'k'.repeat(16)).update(body).digest('hex')}`);
  assert.deepEqual(Object.keys(JSON.parse(body)), ['id', 'event', 'at', 'actor', 'channel', 'product', 'version', 'fingerprints', 'image']);
  assert.deepEqual([1, 2, 3, 4].map(retryDelayMs), [1000, 2000, 4000, 8000]);
  assert.equal(retryDelayMs(40), 15 * 60_000);
});

test('webhooks: a redirect is not followed, a hung receiver times out, a closed port fails; each is a failed delivery', async (t) => {
  let followed = false;
  const server = createServer((req, res) => {
    if (req.url === '/elsewhere') followed = true;
    if (req.url === '/redirect') return void res.writeHead(307, { location: '/elsewhere' }).end();
    if (req.url === '/hang') return; // never answers
    res.writeHead(200).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => (server.closeAllConnections(), new Promise<void>((r) => server.close(() => r()))));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const hook = (path: string, timeoutSeconds = 5) => ({ name: 'h', url: base + path, secret: 's'.repeat(16), events: [], timeoutSeconds, attempts: 3 });
  const event = { seq: 1, type: 'image.uploaded' as const, at: 't', actor: '', channel: null, image: imageEvents(undefined, staged('x86_64', 'uploaded'), 'a', 't')[0]!.image };

  assert.deepEqual((await deliver(hook('/ok'), event)).delivered, true);
  const redirected = await deliver(hook('/redirect'), event);
  assert.deepEqual([redirected.delivered, redirected.status, followed], [false, 307, false]);
  const started = Date.now();
  const hung = await deliver(hook('/hang', 1), event);
  assert.equal(hung.delivered, false);
  assert.equal(hung.status, null);
  assert.ok(Date.now() - started < 4_000, 'cut at its timeout');
  const closed = await deliver({ ...hook('/'), url: 'http://127.0.0.1:9/' }, event);
  assert.deepEqual([closed.delivered, closed.status], [false, null]);
  assert.match(closed.error, /ECONNREFUSED|fetch failed/);
});
