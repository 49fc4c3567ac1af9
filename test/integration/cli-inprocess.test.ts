/**
 * The CLI run in this process (runCli with an io of its own): output formats, input, settings
 * from the environment it is given, and usage errors, without starting a `wharf` process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parse } from 'yaml';
import { buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, tempDir, wharfInProcess } from '../helpers/env.ts';
import { errorCatalogue } from '../../src/errors.ts';

async function twoImages(t: { after(fn: () => Promise<void>): void }) {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const cli = (args: string[], options?: Parameters<typeof wharfInProcess>[1]) => wharfInProcess(['--data-dir', data, ...args], options);
  const ok = async (...args: string[]) => {
    const r = await cli(args);
    assert.equal(r.code, 0, `wharf ${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr, '', `wharf ${args.join(' ')} wrote to stderr`);
    return r.stdout;
  };
  const plain = await buildUnified(work, { name: 'plain.tar.gz', seed: 'plain' });
  const quoted = await buildUnified(work, { name: 'quoted.tar.gz', seed: 'quoted', architecture: 'aarch64', properties: { os: 'Other', release: '2', description: 'Say "hi", twice' } });
  const first = fingerprintFrom(await ok('image', 'import', plain.path, '--alias', 'plain'));
  const second = fingerprintFrom(await ok('image', 'import', quoted.path, '--alias', 'quoted', '--alias', 'other', '--private'));
  return { data, work, cli, ok, first, second };
}

test('image list, alias list and remote list in table, csv, json and yaml', async (t) => {
  const { ok, first, second } = await twoImages(t);

  const table = await ok('image', 'list');
  const lines = table.split('\n');
  assert.match(lines[0]!, /^\+-+\+/);
  assert.match(lines[1]!, /^\| ALIAS +\| FINGERPRINT +\| PUBLIC +\| DESCRIPTION/);
  assert.match(table, new RegExp(`\\| plain +\\| ${first.slice(0, 12)} \\| yes +\\|`));
  // Several aliases of one image: one line each, in the same row.
  assert.match(table, new RegExp(`\\| other +\\| ${second.slice(0, 12)} \\| no +\\|`));
  assert.match(table, /\n\| quoted +\| +\| +\|/);

  const csv = await ok('image', 'list', '--format', 'csv', second.slice(0, 10));
  // Cells with commas, quotes or line breaks quoted, quotes doubled; dates as lxc writes them.
  assert.match(csv, new RegExp(`^"other\nquoted",${second.slice(0, 12)},no,"Say ""hi"", twice",aarch64,CONTAINER,[\\d.]+KiB,"[A-Z][a-z]{2} \\d+, \\d{4} at \\d+:\\d\\d[ap]m \\(UTC\\)"\n$`));
  assert.equal(await ok('image', 'list', '--format', 'csv', 'nothing-matches'), '');

  const json = JSON.parse(await ok('image', 'list', '--format', 'json')) as { fingerprint: string; public: boolean; aliases: { name: string }[] }[];
  assert.deepEqual(json.map((i) => i.fingerprint).sort(), [first, second].sort());
  assert.deepEqual(json.find((i) => i.fingerprint === second)!.aliases.map((a) => a.name).sort(), ['other', 'quoted']);
  const yaml = parse(await ok('image', 'list', '--format', 'yaml', 'quoted')) as { fingerprint: string; properties: Record<string, string> }[];
  assert.deepEqual(yaml.map((i) => i.fingerprint), [second]);
  assert.equal(yaml[0]!.properties.description, 'Say "hi", twice');

  assert.deepEqual(JSON.parse(await ok('image', 'alias', 'list', '--format', 'json', 'o')), [
    { name: 'other', target: second, type: 'container', description: '' },
    { name: 'quoted', target: second, type: 'container', description: '' },
  ]);
  assert.equal(await ok('image', 'alias', 'list', '--format', 'csv', first.slice(0, 6)), `plain,${first.slice(0, 12)},CONTAINER,\n`);
  assert.match(await ok('remote', 'list'), /\| images +\| https:\/\/images\.linuxcontainers\.org +\| simplestreams \| YES +\| YES +\|/);
  assert.deepEqual(parse(await ok('remote', 'list', '--format', 'yaml')).map((r: { name: string }) => r.name), ['images', 'ubuntu', 'ubuntu-daily']);

  const info = await ok('image', 'info', 'quoted');
  assert.match(info, new RegExp(`^Fingerprint: ${second}\nSize: `));
  assert.match(info, /Public: no\n/);
  assert.match(info, /Aliases:\n    - other\n    - quoted\n/);
  const shown = parse(await ok('image', 'show', 'plain'));
  assert.equal(shown.fingerprint, first);
  assert.deepEqual(shown.profiles, ['default']);
});

test('image edit reads the image from io.stdin, with the core rules', async (t) => {
  const { cli, ok, first } = await twoImages(t);
  const shown = parse(await ok('image', 'show', 'plain'));
  const edited = { ...shown, public: false, auto_update: true, expires_at: '2031-01-01T00:00:00Z', properties: { ...shown.properties, serial: 20310101 } };
  delete edited.properties.description;
  const r = await cli(['image', 'edit', 'plain'], { stdin: JSON.stringify(edited) });
  assert.equal(r.code, 0, r.stderr);
  const after = parse(await ok('image', 'show', first.slice(0, 8)));
  assert.equal(after.public, false);
  assert.equal(after.auto_update, true);
  assert.equal(after.expires_at, '2031-01-01T00:00:00Z');
  assert.equal(after.properties.serial, '20310101');
  assert.equal(after.properties.description, undefined, 'properties are replaced whole');
  // A field left out stays; an empty document changes nothing.
  assert.equal((await cli(['image', 'edit', 'plain'], { stdin: 'public: true\n' })).code, 0);
  assert.equal((await cli(['image', 'edit', 'plain'], { stdin: '' })).code, 0);
  const kept = parse(await ok('image', 'show', 'plain'));
  assert.equal(kept.public, true);
  assert.equal(kept.properties.serial, '20310101');
  for (const bad of ['architecture: aarch64\n', 'public: maybe\n', 'properties: [a]\n', 'expires_at: soon\n', ': : :\n']) {
    assert.equal((await cli(['image', 'edit', 'plain'], { stdin: bad })).code, errorCatalogue.invalid_argument.exit, bad);
  }
  assert.deepEqual(parse(await ok('image', 'show', 'plain')), kept, 'refused edits changed nothing');
});

test('help and usage errors go to io: exit status 0 and that of invalid_argument (64)', async () => {
  const help = await wharfInProcess(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: wharf \[options\] \[command\]/);
  assert.match(help.stdout, /serve \[options\] +Serve the store/);
  assert.equal(help.stderr, '');
  const imageHelp = await wharfInProcess(['help', 'image']);
  assert.equal(imageHelp.code, 0);
  assert.match(imageHelp.stdout, /import \[options\] <file> \[rootfs\]/);

  for (const [args, message] of [
    [['image', 'list', '--colour'], /unknown option '--colour'/],
    [['image', 'alias', 'create', 'only-one'], /missing required argument 'image'/],
    [['images'], /unknown command 'images'/],
    [['--data-dir'], /option '--data-dir <dir>' argument missing/],
  ] as const) {
    const r = await wharfInProcess([...args]);
    assert.equal(r.code, errorCatalogue.invalid_argument.exit, args.join(' '));
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  }
});

test('settings and the data directory come from io.env', async (t) => {
  const { data, first } = await twoImages(t);
  const listed = await wharfInProcess(['image', 'list', '--format', 'csv'], { env: { WHARF_DATA_DIR: data } });
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, new RegExp(`^plain,${first.slice(0, 12)},`, 'm'));
  const bad = await wharfInProcess(['image', 'list'], { env: { WHARF_DATA_DIR: data, WHARF_GRACE_PERIOD: 'an hour' } });
  assert.equal(bad.code, errorCatalogue.config.exit);
  assert.equal(bad.stdout, '');
  assert.equal((await wharfInProcess(['image', 'list'], { env: { WHARF_DATA_DIR: data, WHARF_GRACE_PERIOD: '1h' } })).code, 0);
});

test('errors: message and hint on io.stderr, the exit status of their code', async (t) => {
  const { cli } = await twoImages(t);
  const format = await cli(['image', 'list', '--format', 'xml']);
  assert.equal(format.code, errorCatalogue.invalid_argument.exit);
  assert.equal(format.stderr, 'Error: Invalid format "xml"\nUse one of table, csv, json, yaml.\n');
  const missing = await cli(['image', 'info', 'nothing']);
  assert.equal(missing.code, errorCatalogue.not_found.exit);
  assert.equal(missing.stderr, 'Error: Image "nothing" not found\n');
});
