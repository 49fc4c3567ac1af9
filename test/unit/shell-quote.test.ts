/**
 * The quoting of what the catalogue page copies (src/web/assets/shell-quote.js, the browser module
 * itself): every string comes back out of a real shell as the one word it was, and ordinary names
 * stay as people type them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { shellQuote } from '../../src/web/assets/shell-quote.js';

test('names and addresses without special characters are copied as they are; others are single-quoted', () => {
  for (const plain of ['debian/12', 'wharf:debian/12', 'alpine/3.20/cloud/arm64', 'https://127.0.0.1:8443', 'https://images.example.org:443', 'a1b2c3d4e5f6', 'ubuntu/24.04+x@y%z,w']) {
    assert.equal(shellQuote(plain), plain);
  }
  assert.equal(shellQuote('wharf:x;id'), `'wharf:x;id'`);
  assert.equal(shellQuote(`it's`), `'it'\\''s'`);
  assert.equal(shellQuote('$(id)'), `'$(id)'`);
  assert.equal(shellQuote('https://[::1]:8443'), `'https://[::1]:8443'`, 'brackets would be a glob (zsh refuses an unmatched one)');
  assert.equal(shellQuote('~root'), `'~root'`);
  assert.equal(shellQuote('=ls'), `'=ls'`, 'zsh expands =word to a path');
  assert.equal(shellQuote(''), `''`);
});

// Characters some shell gives a meaning to, often enough for every run to meet several.
const tricky = fc.constantFrom(...`'"\\$\`;&|()<>*?[]{}~#!=%^, \t\n-a:/é‮\x1b`.split(''));
const word = fc.oneof(fc.string({ unit: tricky }), fc.string({ unit: 'binary-ascii' }), fc.string({ unit: 'binary' })).filter((s) => !s.includes('\0'));

for (const shell of ['sh', 'bash', 'zsh']) {
  test(`${shell} reads every quoted string back as the words it was, and runs nothing else`, () => {
    assert.equal(spawnSync('sh', ['-c', `command -v ${shell}`]).status, 0, `${shell} is installed (scripts/test.sh installs it)`);
    fc.assert(
      fc.property(fc.array(word, { minLength: 1, maxLength: 4 }), (words) => {
        // One NUL after each word: the words come back apart, and anything else printed shows.
        const run = spawnSync(shell, ['-c', `printf '%s\\0' ${words.map(shellQuote).join(' ')}`], { encoding: 'utf8' });
        assert.equal(run.status, 0, run.stderr);
        assert.deepEqual(run.stdout.split('\0').slice(0, -1), words);
      }),
      { numRuns: 150 },
    );
  });
}
