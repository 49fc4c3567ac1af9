/**
 * Shell completion in the real shells (bash with bash-completion, fish, zsh): the scripts that
 * `wharf completion SHELL` prints, loaded as users load them, complete commands, subcommands,
 * options and option values from wharf's own command tree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { runProcess, wharfBin } from '../helpers/env.ts';

const env = { ...process.env, PATH: `${dirname(wharfBin)}:${process.env.PATH}` } as Record<string, string>;

async function shell(name: string, script: string): Promise<string> {
  const result = await runProcess(name, ['-c', script], { env });
  assert.equal(result.code, 0, `${name}: ${result.stderr}`);
  return result.stdout;
}

test('bash: commands, subcommands, options and option values', async () => {
  const out = await shell(
    'bash',
    `source /usr/share/bash-completion/bash_completion
source <(wharf completion bash)
t() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=\${#COMP_LINE}; __wharf_complete 2>/dev/null; echo "\${COMPREPLY[*]}"; }
t wharf sta
t wharf image im
t wharf image import --al
t wharf stats --by ""`,
  );
  assert.deepEqual(out.trim().split('\n'), ['stats', 'import', '--alias', 'product image day']);
});

test('fish: the same from its completion engine', async () => {
  const out = await shell('fish', 'wharf completion fish | source; complete -C "wharf image im"; complete -C "wharf stats --by "');
  const words = out.trim().split('\n').map((line) => line.split('\t')[0]);
  // fish sorts the candidates of each request itself.
  assert.deepEqual(words, ['import', 'day', 'image', 'product']);
});

test('zsh: the script loads under compinit and defines the completion function', async () => {
  const out = await shell('zsh', 'autoload -U compinit; compinit -u; source <(wharf completion zsh); whence -w _wharf; wharf complete -- image ex');
  assert.match(out, /^_wharf: function$/m);
  assert.match(out, /^export\t/m, 'the candidates zsh asks for');
});
