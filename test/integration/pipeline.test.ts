/**
 * The publishing pipeline end to end on a running server: builders push with a token into
 * staging; the server runs the test hooks on each staged image; the default channel's automatic
 * gate publishes a build once every architecture passed, and none of it when one failed;
 * an operator promotes (refused for a failed image without --force) and rejects; a webhook
 * receiver checks each body's HMAC, sees the events in the log's order, and gets the first on
 * the third try after two 500s.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { buildUnified } from '../fixtures/images.ts';
import { serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { until } from '../helpers/until.ts';

interface Received {
  event: string;
  id: number;
  delivery: string;
  body: { event: string; id: number; product: string; version: string; channel: string | null; actor: string; fingerprints: string[] };
}

test('pipeline: pushed builds are tested, gated per build, promoted or kept out; webhooks signed, ordered, retried', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const secret = 'a-webhook-secret-of-some-length';

  // The receiver: answers 500 to the first two requests, then 200; verifies every signature.
  const received: Received[] = [];
  const badSignatures: string[] = [];
  let requests = 0;
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      const body = Buffer.concat(chunks);
      const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
      const given = Buffer.from(String(req.headers['x-wharf-signature-256'] ?? ''));
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) badSignatures.push(body.toString());
      if (requests <= 2) {
        res.writeHead(500).end();
        return;
      }
      const parsed = JSON.parse(body.toString()) as Received['body'];
      received.push({ event: String(req.headers['x-wharf-event']), id: parsed.id, delivery: String(req.headers['x-wharf-delivery']), body: parsed });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => receiver.close(() => r())));
  const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/wharf`;

  // A hook that fails the arm64 image of release 2, and one that checks the rootfs is there.
  await wharfOk(data, ['channel', 'list']);
  await writeFile(
    join(data, 'config.yaml'),
    [
      'test_hooks:',
      `  - name: arch\n    command: 'case "$WHARF_IMAGE_PRODUCT" in *:2:arm64:*) echo "arm64 is broken"; exit 1;; esac'`,
      `  - name: files\n    command: 'test -s "$WHARF_IMAGE_UNIFIED"'`,
      'gate_wait: 3',
      'webhooks:',
      `  - name: ci\n    url: ${hookUrl}\n    secret: ${secret}`,
    ].join('\n') + '\n',
  );
  const token = (await wharfOk(data, ['token', 'add', 'builder', '--push', 'piped:*:*:*'])).trim();
  const server = await serve(t, data, { processes: 1 });
  const push = async (release: string, architecture: string) => {
    const distro = architecture === 'x86_64' ? 'amd64' : 'arm64';
    const built = await buildUnified(work, { architecture, properties: { os: 'Piped', release, architecture: distro, serial: `2026120${release}_01:00` }, seed: `${release}-${architecture}`, name: `${release}-${architecture}.tar.gz` });
    const r = await fetchRaw(`${server.base}/1.0/images`, { ca: server.tls.cert, method: 'POST', body: await readFile(built.path), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' } });
    assert.ok(r.status >= 200 && r.status < 300, r.body.toString());
    return built.sha256;
  };
  const staged = async () => JSON.parse(await wharfOk(data, ['image', 'staged', '--all', '--format', 'json'])) as { fingerprint: string; product: string; stage: string; channels: string[] }[];
  const index = async () => (await fetchRaw(`${server.base}/streams/v1/images.json`, { ca: server.tls.cert })).body.toString();

  // Build 1: both architectures pass and are published together.
  const one = [await push('1', 'x86_64'), await push('1', 'aarch64')];
  await until('build 1 promoted', async () => (await staged()).filter((i) => one.includes(i.fingerprint) && i.stage === 'promoted').length === 2 || undefined, 60_000);
  await until('build 1 in the public index', async () => {
    const published = await index();
    return one.every((fp) => published.includes(fp)) || undefined;
  }, 10_000);
  assert.deepEqual((await staged()).filter((i) => one.includes(i.fingerprint)).map((i) => i.channels), [['default'], ['default']], 'out of staging');
  // The catalogue shows they passed their tests, and nothing of what is still staged.
  const catalogue = JSON.parse((await fetchRaw(`${server.base}/catalogue/v1/products.json`, { ca: server.tls.cert })).body.toString()) as { products: { versions: { images: { fingerprint: string; tested: boolean | null }[] }[] }[] };
  const catalogued = catalogue.products.flatMap((p) => p.versions.flatMap((v) => v.images));
  assert.deepEqual(catalogued.filter((i) => one.includes(i.fingerprint)).map((i) => i.tested), [true, true]);

  // Build 2: arm64 fails, so amd64 (passed) is not published either.
  const [two64, twoArm] = [await push('2', 'x86_64'), await push('2', 'aarch64')];
  await until('build 2 tested', async () => {
    const states = new Map((await staged()).map((i) => [i.fingerprint, i.stage]));
    return (states.get(two64) === 'passed' && states.get(twoArm) === 'failed') || undefined;
  }, 60_000);
  await new Promise((r) => setTimeout(r, 2_500));
  assert.ok(!(await index()).includes(two64), 'a build with a failed architecture is kept out whole');
  const log = await wharfOk(data, ['image', 'tests', twoArm, '--log']);
  assert.match(log, /arm64 is broken/);

  // The operator: a failed image is refused without --force; rejecting takes it out.
  const refused = await wharf(data, ['image', 'promote', twoArm, '--channel', 'default']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /has not passed its tests \(it is failed\)/);
  assert.ok(!(await fetchRaw(`${server.base}/catalogue/v1/products.json`, { ca: server.tls.cert })).body.toString().includes(two64), 'staged images are not catalogued');
  await wharfOk(data, ['image', 'reject', twoArm]);
  // With its failed sibling rejected, the build's remaining image passes the gate on its own.
  await until('build 2 amd64 promoted', async () => (await index()).includes(two64) || undefined, 30_000);
  assert.deepEqual((await staged()).find((i) => i.fingerprint === twoArm)?.stage, 'rejected');
  assert.match(await wharfOk(data, ['image', 'info', twoArm]), /^Pipeline: rejected since /m);
  assert.match(await wharfOk(data, ['image', 'info', one[0]!]), /^Pipeline: promoted \(tests passed\) since /m);

  // Webhooks: signed, in order, the first after two 500s (three tries), none lost or repeated.
  await until('webhooks delivered', async () => received.some((r) => r.event === 'image.promoted' && r.body.fingerprints[0] === two64) || undefined, 60_000);
  assert.deepEqual(badSignatures, [], 'every body carries its HMAC');
  const ids = received.map((r) => r.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'in order');
  assert.equal(new Set(ids).size, ids.length, 'each once');
  assert.equal(received[0]!.delivery, String(received[0]!.id));
  const deliveries = JSON.parse(await wharfOk(data, ['webhook', 'deliveries', 'ci', '--format', 'json'])) as { event: number; attempt: number; outcome: string; status: number | null }[];
  const first = deliveries.filter((d) => d.event === received[0]!.id).sort((a, b) => a.attempt - b.attempt);
  assert.deepEqual(first.map((d) => [d.attempt, d.outcome, d.status]), [[1, 'failed', 500], [2, 'failed', 500], [3, 'delivered', 204]]);
  const events = (fp: string) => received.filter((r) => r.body.fingerprints[0] === fp).map((r) => `${r.event}${r.body.channel ? ` ${r.body.channel}` : ''}`);
  assert.deepEqual(events(one[0]!), ['image.uploaded staging', 'test.passed staging', 'image.promoted default']);
  assert.deepEqual(events(twoArm), ['image.uploaded staging', 'test.failed staging']);
  const promoted = received.find((r) => r.event === 'image.promoted' && r.body.fingerprints[0] === one[1])!;
  assert.equal(promoted.body.product, 'piped:1:arm64:default');
  assert.equal(promoted.body.version, '20261201_01:00');
  assert.equal(promoted.body.actor, 'wharf');
  assert.equal(received.find((r) => r.event === 'image.uploaded')!.body.actor, 'token builder');

  // /metrics: the pipeline by stage, the deliveries by outcome, nothing left to send.
  await until('metrics caught up', async () => {
    const metrics = (await fetchRaw(`${server.base}/metrics`, { ca: server.tls.cert })).body.toString();
    return /^wharf_pipeline_images\{stage="promoted"\} 3$/m.test(metrics) && /^wharf_webhook_backlog\{webhook="ci"\} 0$/m.test(metrics) ? metrics : undefined;
  }, 10_000).then((metrics) => {
    assert.match(metrics, /^wharf_pipeline_images\{stage="rejected"\} 1$/m);
    assert.match(metrics, /^wharf_webhook_deliveries_total\{webhook="ci",outcome="failed"\} 2$/m);
    assert.match(metrics, new RegExp(`^wharf_webhook_deliveries_total\\{webhook="ci",outcome="delivered"\\} ${received.length}$`, 'm'));
  });
});

test('pipeline: a server stopping kills the hook it runs and leaves the image waiting for its tests again', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const started = join(work, 'started');
  await wharfOk(data, ['channel', 'list']);
  await writeFile(join(data, 'config.yaml'), `test_hooks:\n  - name: slow\n    command: 'touch ${started}; sleep 120'\n    timeout: 10m\n`);
  const token = (await wharfOk(data, ['token', 'add', 'builder', '--push', '*:*:*:*'])).trim();
  const server = await serve(t, data, { processes: 1 });
  const built = await buildUnified(work, { properties: { os: 'Slow', release: '1' }, seed: 'slow' });
  const pushed = await fetchRaw(`${server.base}/1.0/images`, { ca: server.tls.cert, method: 'POST', body: await readFile(built.path), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' } });
  assert.ok(pushed.status >= 200 && pushed.status < 300, pushed.body.toString());
  await until('the hook running', async () => (await readFile(started).then(() => true).catch(() => undefined)), 30_000);
  const stopping = Date.now();
  await server.close(1_000);
  assert.ok(Date.now() - stopping < 10_000, 'stopping did not wait out the hook');
  const [image] = JSON.parse(await wharfOk(data, ['image', 'staged', '--format', 'json'])) as { stage: string }[];
  assert.equal(image!.stage, 'uploaded', 'waiting for its tests again');
  assert.deepEqual(JSON.parse(await wharfOk(data, ['image', 'tests', built.sha256, '--format', 'json'])), [], 'the cut attempt is not recorded');
});
