/**
 * Damaged database files in the data directory (a disk fault, a bad copy, something else written
 * over them). The catalogue (wharf.db) is an error that names the file and changes nothing; the
 * download counts and the grants are moved aside (kept) and started afresh, so that they never
 * stop a server from serving images.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, serve, tempDir, wharf, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A copy of `file` with every 7th byte past the header overwritten: pages SQLite calls malformed. */
async function scramble(file: string) {
  const bytes = await readFile(file);
  for (let i = 200; i < bytes.length; i += 7) bytes[i] = 0xff;
  await writeFile(file, bytes);
}

test('a damaged catalogue is an error naming the file, whatever the damage, and nothing is changed', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Alpha', release: '1', architecture: 'amd64' } });
  const root = await buildSquashfs(work, { seed: 'alpha' });
  await wharfOk(data, ['image', 'import', meta.path, root.path, '--alias', 'alpha']);
  const intact = await readFile(join(data, 'wharf.db'));

  for (const [what, damage] of [
    ['random bytes', () => writeFile(join(data, 'wharf.db'), randomBytes(8192))],
    ['text', () => writeFile(join(data, 'wharf.db'), 'not a database at all\n')],
    ['scrambled pages', () => scramble(join(data, 'wharf.db'))],
  ] as const) {
    await writeFile(join(data, 'wharf.db'), intact);
    await damage();
    const damaged = await readFile(join(data, 'wharf.db'));
    for (const args of [['image', 'list'], ['image', 'import', meta.path, root.path]]) {
      const result = await wharf(data, args);
      assert.equal(result.code, 74, `${what}: wharf ${args.join(' ')} exits 74 (store_corrupt)\n${result.stderr}`);
      assert.match(result.stderr, /wharf\.db is damaged or is not a wharf database/, what);
      assert.match(result.stderr, /backup/, `${what}: the hint says how to recover`);
    }
    const started = await wharf(data, ['serve', '--https', '127.0.0.1:0'], { timeoutMs: 20_000 });
    assert.equal(started.code, 74, `${what}: serve refuses to start\n${started.stderr}`);
    assert.deepEqual(await readFile(join(data, 'wharf.db')), damaged, `${what}: the damaged file is left as it was, for recovery`);
  }
});

test('damaged download counts and grants are moved aside and started afresh: the server serves, wharf stats answers', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, { properties: { os: 'Beta', release: '1', architecture: 'amd64' } });
  const root = await buildSquashfs(work, { seed: 'beta' });
  fingerprintFrom(await wharfOk(data, ['image', 'import', meta.path, root.path, '--alias', 'beta']));
  await writeFile(join(data, 'usage.db'), 'garbage, not SQLite\n');
  await writeFile(join(data, 'grants.db'), randomBytes(4096));

  const server = await serve(t, data, { processes: 2 });
  const index = await fetchRaw(`${server.base}/streams/v1/images.json`, { ca: server.tls.cert });
  assert.equal(index.status, 200);
  const file = await fetchRaw(`${server.base}/files/${root.sha256}.squashfs`, { ca: server.tls.cert });
  assert.equal(sha256(file.body), root.sha256);
  await server.close(5_000);

  const names = await readdir(data);
  for (const db of ['usage.db', 'grants.db']) {
    assert.ok(names.includes(db), `a fresh ${db}`);
    assert.ok(names.some((n) => n.startsWith(`${db}.damaged-`)), `the damaged ${db} is kept aside: ${names.join(' ')}`);
  }
  const aside = names.find((n) => n.startsWith('usage.db.damaged-'))!;
  assert.equal(await readFile(join(data, aside), 'utf8'), 'garbage, not SQLite\n', 'moved, not rewritten');
  // The fresh counts hold the download served above.
  const stats = JSON.parse(await wharfOk(data, ['stats', '--format', 'json'])) as { downloads: number }[];
  assert.equal(stats[0]?.downloads, 1);

  // wharf stats on a damaged file: the same way out, with a warning that says where it went.
  await writeFile(join(data, 'usage.db'), randomBytes(4096));
  const result = await wharf(data, ['stats']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /usage\.db was damaged: moved aside to .*usage\.db\.damaged-/);
});
