/**
 * `wharf cache list` prints paths an origin wrote into its index: a hostile origin's terminal
 * control sequences and bidi overrides are shown as escapes, not acted on by the terminal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FsBlobStore } from '../../src/blob/fs.ts';
import { cacheLocation } from '../../src/cache/location.ts';
import { tempDir, wharfOk } from '../helpers/env.ts';

test("cache list shows the escape sequences and bidi overrides of an origin's paths as text", async (t) => {
  const data = join(await tempDir(t), 'data');
  const where = cacheLocation(data);
  // What a mirror leaves after caching one file of an origin whose index names it so.
  const blobs = new FsBlobStore(where.blobs);
  await blobs.init();
  const writer = await blobs.createWriter();
  await writer.write(Buffer.from('a cached file'));
  const { sha256, size } = await writer.commit();
  const hostilePath = 'images/\x1b[31mred\x1b[0m/\x1b]0;owned\x07/evil\u202eexe.txt/\x9b2J\nfake-second-path';
  await mkdir(where.dir, { recursive: true });
  await writeFile(where.originIndex, JSON.stringify({ origin: 'https://origin.example.org', checkedAt: Date.now(), files: { [hostilePath]: { sha256, size } }, dropped: {} }));

  const listed = await wharfOk(data, ['cache', 'list']);
  assert.doesNotMatch(listed, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/u, 'no control but the line ends');
  assert.match(listed, /images\/\\x1b\[31mred\\x1b\[0m\/\\x1b\]0;owned\\x07\/evil\\u202eexe\.txt\/\\x9b2J\\x0afake-second-path/);
  assert.equal(listed.split('\n').filter((line) => line.startsWith('| ')).length, 2, 'the heading and the one cached file');
  // The data formats keep the path exactly, for programs.
  assert.equal((JSON.parse(await wharfOk(data, ['cache', 'list', '--format', 'json'])) as { paths: string[] }[])[0]!.paths[0], hostilePath);
});
