/**
 * Several serving processes on one port: what one grants another honours, changes reach all of
 * them, a foreign server never joins the port, and the extra processes live and die with the first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, trustedClient, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Pids of this process's serving children, read from /proc (no procps needed). */
function replicaPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name may hold spaces and parentheses: the fields after its last ")" are fixed.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      if (/replica-main/.test(readFileSync(`/proc/${entry}/cmdline`, 'utf8'))) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

test('serving processes share grants, changes and the port, and stop with the first', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const priv = await buildUnified(work, { properties: { os: 'Procs', release: '1' }, seed: 'procs', name: 'p.tar.gz' });
  const fp = fingerprintFrom(await wharfOk(data, ['image', 'import', priv.path, '--private']));
  const admin = await trustedClient(work, data);
  const server = await serve(t, data, { processes: 2 });
  assert.equal(replicaPids().length, 1, 'one extra serving process');

  // A new connection for every request, as LXD and Incus make them: the kernel spreads them.
  const call = (path: string, options: { method?: string; admin?: boolean } = {}) =>
    fetchRaw(server.base + path, {
      ca: server.tls.cert,
      method: options.method ?? 'GET',
      headers: { connection: 'close', ...(options.method === 'POST' ? { 'content-type': 'application/json' } : {}) },
      ...(options.admin ? { cert: admin.cert, key: admin.private } : {}),
      ...(options.method === 'POST' ? { body: '{}' } : {}),
    });

  // Each secret is minted on one connection and used on others: with two processes, ten rounds
  // all landing on one process would happen once in a thousand runs.
  for (let round = 0; round < 10; round++) {
    const minted = JSON.parse((await call(`/1.0/images/${fp}/secret`, { method: 'POST', admin: true })).body.toString());
    const secret = minted.metadata.metadata.secret as string;
    const op = minted.metadata.id as string;
    assert.equal((await call(`/1.0/operations/${op}/wait?secret=${secret}`)).status, 200, 'the token operation is visible from every process');
    assert.equal((await call(`/1.0/images/${fp}?secret=${secret}`)).status, 200, 'the secret opens the image everywhere');
    assert.equal((await call(`/1.0/images/${fp}/export?secret=${secret}`)).status, 200);
    // Spent everywhere: asked again at once, on any process, while the first may still be
    // settling it, the answer is that it is gone.
    const again = await call(`/1.0/images/${fp}/export?secret=${secret}`);
    assert.equal(again.status, 404, 'spent everywhere once used');
  }

  // A change made by the CLI shows in every process's index within a second.
  const pub = await buildUnified(work, { properties: { os: 'Procs', release: '2' }, seed: 'procs2', name: 'q.tar.gz' });
  const added = fingerprintFrom(await wharfOk(data, ['image', 'import', pub.path]));
  await sleep(1000);
  for (let i = 0; i < 10; i++) {
    const index = (await call('/streams/v1/images.json')).body.toString();
    assert.ok(index.includes(added), `request ${i}: the new image is listed`);
  }

  // Another server cannot join the port, even though the serving processes share it.
  const second = await wharf(join(work, 'other'), ['serve', '--https', `127.0.0.1:${server.httpsPort}`]);
  assert.notEqual(second.code, 0);
  assert.match(second.stderr, /EADDRINUSE|in use/);

  // A serving process that dies is replaced, and nothing is refused meanwhile for long.
  const [first] = replicaPids();
  process.kill(first!, 'SIGKILL');
  let replaced: number[] = [];
  for (let i = 0; i < 100 && !(replaced.length === 1 && replaced[0] !== first); i++) {
    await sleep(100);
    replaced = replicaPids();
  }
  assert.equal(replaced.length, 1, 'a new serving process');
  assert.notEqual(replaced[0], first);
  for (let i = 0; i < 6; i++) assert.equal((await call('/streams/v1/index.json')).status, 200);

  await server.close();
  assert.deepEqual(replicaPids(), [], 'the extra processes stop with the first');
});
