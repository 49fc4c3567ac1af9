/**
 * Site health checks against lying sites on loopback: wrong or truncated bytes of a larger file,
 * a false claim to hold files, redirects back to the origin, and a held list of 150,000 entries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkSite, heldLimit } from '../../src/steering/checker.ts';
import type { OriginFiles, PublishedFile } from '../../src/steering/origin-files.ts';
import type { SiteRecord } from '../../src/domain/steering.ts';
import { startFaultServer, type FaultServer } from '../helpers/fault-server.ts';
import { tempDir } from '../helpers/env.ts';

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Origin {
  files: OriginFiles;
  small: PublishedFile;
  a: PublishedFile;
  b: PublishedFile;
  bytes: Map<string, Buffer>;
}

/** An origin publishing a small file and two of 2 MiB, as the checker sees it. */
function origin(): Origin {
  const bytes = new Map<string, Buffer>();
  const publish = (content: Buffer): PublishedFile => {
    const sha = sha256(content);
    bytes.set(sha, content);
    return { path: `files/${sha}.squashfs`, sha256: sha, size: content.length };
  };
  const [small, a, b] = [publish(randomBytes(1000)), publish(randomBytes(2 * MiB)), publish(randomBytes(2 * MiB))];
  const all = [small, a, b];
  const files: OriginFiles = {
    smallest: () => small,
    find: (sha) => all.find((f) => f.sha256 === sha),
    all: () => all,
    read: async (sha, range) => bytes.get(sha)?.subarray(range.start, range.end + 1),
  };
  return { files, small, a, b, bytes };
}

/** A site serving `served` (path → bytes; the origin's files by default), with Range support or not. */
async function siteServing(t: { after(fn: () => Promise<void>): void }, o: Origin, served: Map<string, Buffer | undefined> = new Map(), held?: string[]): Promise<{ site: SiteRecord; server: FaultServer }> {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'files'));
  for (const file of [o.small, o.a, o.b]) {
    const content = served.has(file.path) ? served.get(file.path) : o.bytes.get(file.sha256);
    if (content) await writeFile(join(dir, file.path), content);
  }
  if (held) {
    await mkdir(join(dir, '.wharf'));
    await writeFile(join(dir, '.wharf', 'held'), JSON.stringify({ held }));
  }
  const server = await startFaultServer(dir);
  t.after(() => server.close());
  return { site: { name: 'site', url: server.base, countries: ['DE'], continents: [], weight: 1, health: null }, server };
}

const always = (value: number) => () => value;

test('a site serving wrong bytes of a larger file fails its check: a random range is compared with the origin\'s bytes', async (t) => {
  const o = origin();
  const damaged = Buffer.from(o.bytes.get(o.b.sha256)!);
  damaged[MiB] = damaged[MiB]! ^ 0xff;
  const { site, server } = await siteServing(t, o, new Map([[o.b.path, damaged]]));
  // A draw of 0.5 samples the second larger file (b), from byte 1015808: the damaged byte is in it.
  for (const ranges of [true, false]) {
    server.ranges = ranges;
    const health = await checkSite(site, o.files, { random: always(0.5) });
    assert.equal(health.http, false, `served ${ranges ? 'with' : 'without'} Range support`);
    assert.match(health.error ?? '', new RegExp(`^http: /${o.b.path} differs from the origin's file \\(bytes 1015808-1081343\\)`));
  }
  assert.ok(server.requests.includes(o.b.path), 'the larger file was asked for');

  const intact = await siteServing(t, o);
  for (const ranges of [true, false]) {
    intact.server.ranges = ranges;
    for (const draw of [0, 0.5, 0.999999]) assert.equal((await checkSite(intact.site, o.files, { random: always(draw) })).http, true, `intact, draw ${draw}, ranges ${ranges}`);
  }
});

test('a truncated copy of a larger file fails its check by its size, whatever range is sampled', async (t) => {
  const o = origin();
  const { site, server } = await siteServing(t, o, new Map([[o.b.path, o.bytes.get(o.b.sha256)!.subarray(0, 1.5 * MiB)]]));
  server.ranges = true;
  const ranged = await checkSite(site, o.files, { random: always(0.5) });
  assert.equal(ranged.http, false);
  assert.match(ranged.error ?? '', new RegExp(`/${o.b.path}: asked for bytes 1015808-1081343 of 2097152, answered "bytes 1015808-1081343/1572864"`));
  server.ranges = false;
  const whole = await checkSite(site, o.files, { random: always(0.5) });
  assert.equal(whole.http, false);
  assert.match(whole.error ?? '', new RegExp(`/${o.b.path} is 1572864 bytes, the origin's 2097152`));
});

test('the sampled file is one the site says it holds, so a false claim is found out', async (t) => {
  const o = origin();
  // It claims b, which it does not have; a draw of 0 would sample a among all published files.
  const liar = await siteServing(t, o, new Map([[o.b.path, undefined]]), [o.b.sha256]);
  liar.server.ranges = true;
  const health = await checkSite(liar.site, o.files, { random: always(0) });
  assert.equal(health.http, false);
  assert.match(health.error ?? '', new RegExp(`HTTP 404 for /${o.b.path}`));

  const honest = await siteServing(t, o, new Map([[o.b.path, undefined]]), [o.a.sha256]);
  honest.server.ranges = true;
  const fine = await checkSite(honest.site, o.files, { random: always(0) });
  assert.equal(fine.http, true, fine.error ?? '');
  assert.deepEqual(fine.held, [o.a.sha256]);
  assert.ok(honest.server.requests.includes(o.a.path), 'what it holds is sampled');
});

test('a site that redirects, back to the origin say, fails its check without the redirect being followed', async (t) => {
  const o = origin();
  // The "origin": a server with every file intact, where the site sends each request.
  const upstream = await siteServing(t, o);
  const { site, server } = await siteServing(t, o);
  server.beforeEach = async (path) => void server.redirects.set(path, `${upstream.server.base}/${path}`);
  const health = await checkSite(site, o.files);
  assert.equal(health.http, false);
  assert.equal(health.held, null);
  assert.match(health.error ?? '', new RegExp(`^http: /${o.small.path} redirects to http://127\\.0\\.0\\.1:\\d+/${o.small.path}`));
  assert.deepEqual(upstream.server.requests, [], 'not followed');
});

test('of what a site says it holds, the origin keeps only published files large enough to steer, each once, and at most so many', async (t) => {
  const o = origin();
  const claimed = Array.from({ length: 150_000 }, () => randomBytes(32).toString('hex'));
  claimed.splice(70_000, 0, o.a.sha256, o.small.sha256, o.a.sha256, 'not a sha256');
  const { site, server } = await siteServing(t, o, new Map(), claimed);
  server.ranges = true;
  const health = await checkSite(site, o.files);
  assert.equal(health.http, true, health.error ?? '');
  assert.equal(health.held?.length, 1, 'unpublished files are no use');
  assert.deepEqual(health.held, [o.a.sha256], 'the small file is never steered');

  // An origin publishing more files than that: the list stays bounded.
  const many: OriginFiles = { ...o.files, find: (sha) => o.files.find(sha) ?? { path: `files/${sha}.squashfs`, sha256: sha, size: 2 * MiB } };
  const bounded = await checkSite(site, many);
  assert.equal(bounded.held?.length, heldLimit);
});
