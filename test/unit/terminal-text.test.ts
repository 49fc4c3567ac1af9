/** What listings print for people: text from other servers and image builders cannot drive the terminal. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { escapeTerminalControls, table } from '../../src/cli/output.ts';

/** What a terminal would act on rather than show, were it printed raw. */
const acted = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

test('controls and bidi overrides are written as escapes that show; other text, any script, stays as it is', () => {
  assert.equal(escapeTerminalControls('images/\x1b[31mred\x1b[0m'), 'images/\\x1b[31mred\\x1b[0m');
  assert.equal(escapeTerminalControls('evil\u202eexe.txt'), 'evil\\u202eexe.txt');
  assert.equal(escapeTerminalControls('\x00\x07\b\t\n\r\x7f\x9b'), '\\x00\\x07\\x08\\x09\\x0a\\x0d\\x7f\\x9b');
  assert.equal(escapeTerminalControls('\u2066\u2069\u200f\u061c'), '\\u2066\\u2069\\u200f\\u061c');
  for (const plain of ['images/debian/bookworm/amd64/default/20260101_05:24/rootfs.squashfs', 'Ελληνικά 日本語 עברית', 'emoji 🐳', '']) {
    assert.equal(escapeTerminalControls(plain), plain);
  }
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (text) => {
      assert.doesNotMatch(escapeTerminalControls(text), acted);
    }),
    { numRuns: 500 },
  );
});

test('a table keeps its lines and columns, and no control of a cell reaches the terminal', () => {
  const out = table(['PATH', 'SIZE'], [['a\x1b[2J\u202eb\nsecond line', '1MiB'], ['tab\there', '2MiB']]);
  const lines = out.split('\n').filter(Boolean);
  for (const line of lines) assert.doesNotMatch(line, acted);
  assert.deepEqual(lines.map((l) => l.length), lines.map(() => lines[0]!.length), 'every line as wide as the rule');
  assert.ok(lines.includes(`| a\\x1b[2J\\u202eb | 1MiB |`), out);
  assert.ok(lines.includes(`| second line     |      |`), out);
  assert.ok(lines.includes(`| tab\\x09here     | 2MiB |`), out);
});
