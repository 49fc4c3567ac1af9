/**
 * Publishing under kill -9: imports, promotions, demotions, retention and prunes run by the CLI are
 * killed with SIGKILL at random moments (and a second server, running the background jobs, once),
 * while a client keeps reading every index: the default root, two channel roots and a private
 * view. Whatever was killed when, every file of every index served during the run (all within the
 * grace period) is still served with its listed bytes, and the store checks out whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { join, posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharf, wharfBin, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';

interface Products {
  products: Record<string, { versions: Record<string, { items: Record<string, { path: string; sha256: string; size: number }> }> }>;
}

/** Runs the CLI and kills it with SIGKILL after `ms` (if it has not finished by then). */
async function killedAfter(data: string, args: string[], ms: number): Promise<'killed' | number> {
  const child = spawn(wharfBin, ['--data-dir', data, ...args], { stdio: 'ignore' });
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const [code, signal] = await exited;
  clearTimeout(timer);
  return signal === 'SIGKILL' ? 'killed' : (code ?? -1);
}

test('imports, promotions, retention and prunes killed at random moments: every file any served index listed stays served', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  let serial = 0;
  const build = async () => {
    serial++;
    const meta = await buildMetadataTarball(work, { name: `m-${serial}.tar.xz`, properties: { os: 'Crash', release: String(serial % 2), architecture: 'amd64', serial: `202601${String(serial).padStart(2, '0')}_00:00` } });
    const root = await buildSquashfs(work, { name: `r-${serial}.squashfs`, seed: `crash-${serial}` });
    return [meta.path, root.path];
  };
  const fps: string[] = [];
  for (let i = 0; i < 4; i++) fps.push(fingerprintFrom(await wharfOk(data, ['image', 'import', ...(await build()), '--channel', i % 2 ? 'daily' : 'default'])));
  await wharfOk(data, ['image', 'import', ...(await build()), '--channel', 'stable', '--private']);
  await wharfOk(data, ['view', 'add', 'tenant', '--channel', 'stable']);
  const server = await serve(t, data, { processes: 1 });
  const viewPath = new URL((await wharfOk(data, ['view', 'token', 'add', 'tenant', '--url', server.base])).trim()).pathname;
  const get = (path: string) => fetchRaw(server.base + path, { ca: server.tls.cert });

  // The reader: every index, over and over; each file it ever saw listed, by resolved path.
  const roots = ['', '/daily', '/stable', viewPath];
  const listed = new Map<string, string>();
  let reading = true;
  const reader = (async () => {
    while (reading) {
      for (const root of roots) {
        const answer = await get(`${root}/streams/v1/images.json`).catch(() => undefined);
        if (answer?.status !== 200) continue;
        for (const product of Object.values((JSON.parse(answer.body.toString()) as Products).products)) {
          for (const version of Object.values(product.versions)) for (const item of Object.values(version.items)) listed.set(posix.join(root || '/', item.path), item.sha256);
        }
      }
      await sleep(20);
    }
  })();

  // A second server on the same store runs the background jobs (retention, collection) and is
  // killed once, mid-run.
  const jobs = spawn(wharfBin, ['--data-dir', data, 'serve', '--https', '127.0.0.1:0'], { stdio: 'ignore' });
  t.after(() => void jobs.kill('SIGKILL'));

  const outcomes: Record<string, number> = {};
  const note = (what: string, outcome: 'killed' | number) => {
    const key = `${what} ${outcome === 'killed' ? 'killed' : outcome === 0 ? 'done' : 'failed'}`;
    outcomes[key] = (outcomes[key] ?? 0) + 1;
  };
  await wharfOk(data, ['channel', 'set', 'daily', '--keep', '2']);
  for (let round = 0; round < 14; round++) {
    const delay = 80 + Math.floor(Math.random() * 700);
    const fp = fps[round % fps.length]!;
    const steps: [string, string[]][] = [
      ['import', ['image', 'import', ...(await build()), '--channel', 'daily']],
      ['promote', ['image', 'promote', fp, '--channel', 'stable']],
      ['demote', ['image', 'demote', fp, '--channel', 'daily']],
      ['retention', ['channel', 'set', 'daily', '--keep', String(1 + (round % 2))]],
      ['prune', ['prune', '--keep', '1']],
    ];
    const [what, args] = steps[round % steps.length]!;
    note(what, await killedAfter(data, args, delay));
    if (round === 7) jobs.kill('SIGKILL');
    await sleep(100);
  }
  await sleep(300);
  reading = false;
  await reader;
  t.diagnostic(`outcomes: ${JSON.stringify(outcomes)}`);
  assert.ok(Object.keys(outcomes).some((k) => k.endsWith('killed')), `some commands were killed mid-way: ${JSON.stringify(outcomes)}`);
  assert.ok(listed.size > 10, `the reader saw the indexes: ${listed.size} files`);

  // Every file any served index listed is served, with its bytes.
  for (const [path, sha] of listed) {
    const answer = await get(path);
    assert.equal(answer.status, 200, `${path} was listed, and is gone (at /files/: ${(await get(path.replace(/^.*\/files\//, '/files/'))).status}; outcomes ${JSON.stringify(outcomes)}; images now ${await wharfOk(data, ['image', 'list', '--format', 'csv'])})`);
    assert.equal(createHash('sha256').update(answer.body).digest('hex'), sha, path);
  }
  // And the store checks out: every image whole, every index served as the clients check it.
  const verified = await wharf(data, ['image', 'verify']);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
});
