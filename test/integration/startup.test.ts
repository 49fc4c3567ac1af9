/**
 * How wharf starts: bin/wharf runs the compiled build only while it is current, the build works
 * (worker thread included), and short commands load none of the heavy modules that only other
 * commands need.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../fixtures/images.ts';
import { fingerprintFrom, repoRoot, runProcess, tempDir, wharfBin } from '../helpers/env.ts';

const node = join(repoRoot, 'node_modules', '.bin', 'node');

test('bin/wharf runs dist/ only while no source is newer than the build', async (t) => {
  // A copy of the launcher in a tree of its own, whose two entry points say which one ran.
  const root = await tempDir(t);
  await mkdir(join(root, 'bin'));
  await mkdir(join(root, 'src', 'cli'), { recursive: true });
  await copyFile(wharfBin, join(root, 'bin', 'wharf'));
  await symlink(join(repoRoot, 'node_modules'), join(root, 'node_modules'));
  const entry = (name: string) => `console.log([${JSON.stringify(name)}, ...process.argv.slice(2), ...process.execArgv.filter((a) => a.includes("semi-space"))].join(" "));\n`;
  await writeFile(join(root, 'src', 'main.ts'), entry('sources'));
  await writeFile(join(root, 'src', 'cli', 'main.ts'), '\n');
  for (const f of ['tsconfig.json', 'tsconfig.build.json']) await writeFile(join(root, f), '{}\n');
  const ran = async (args = ['a', 'b c']) => {
    const r = await runProcess(join(root, 'bin', 'wharf'), args);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'no notice when stderr is not a terminal');
    return r.stdout;
  };
  const setTime = (path: string, seconds: number) => utimes(join(root, path), seconds, seconds);
  for (const path of ['src/main.ts', 'src/cli/main.ts', 'src/cli', 'src', 'tsconfig.json', 'tsconfig.build.json']) await setTime(path, 1000);

  assert.equal(await ran(), 'sources a b c\n', 'no build');

  await mkdir(join(root, 'dist'));
  await writeFile(join(root, 'dist', 'main.js'), entry('build'));
  assert.equal(await ran(), 'sources a b c\n', 'a build without its stamp is not trusted');

  await writeFile(join(root, 'dist', '.build-stamp'), '');
  await setTime('dist/.build-stamp', 2000);
  assert.equal(await ran(), 'build a b c\n');

  await setTime('src/cli/main.ts', 3000);
  assert.equal(await ran(), 'sources a b c\n', 'a source edited after the build');
  await setTime('src/cli/main.ts', 1000);
  await setTime('src/cli', 3000);
  assert.equal(await ran(), 'sources a b c\n', 'a source added or removed after the build');
  await setTime('src/cli', 1000);
  await setTime('tsconfig.build.json', 3000);
  assert.equal(await ran(), 'sources a b c\n', 'the build settings changed after the build');
  await setTime('tsconfig.build.json', 1000);
  assert.equal(await ran(), 'build a b c\n');
  // Only the long-running server trades collection time for a smaller heap.
  assert.equal(await ran(['--data-dir', 'x', 'serve', '--https', ':1']), 'build --data-dir x serve --https :1 --max-semi-space-size=1\n');
});

/**
 * The files (packages' and wharf's own, relative to the checkout) a command loads, through a
 * module hook that lists them at exit, and its exit status.
 */
async function loadedModules(work: string, entry: string, args: string[]): Promise<{ code: number; urls: string[]; builtins: string[] }> {
  const hook = join(work, 'list-modules.mjs');
  await writeFile(
    hook,
    `import { registerHooks } from 'node:module';
const urls = new Set();
registerHooks({ load(url, context, next) { urls.add(url); return next(url, context); } });
process.on('exit', () => process.stderr.write('MODULES ' + JSON.stringify([...urls]) + '\\n' + 'BUILTINS ' + JSON.stringify(process.moduleLoadList) + '\\n'));
`,
  );
  const r = await runProcess(node, ['--disable-warning=ExperimentalWarning', '--import', hook, entry, ...args]);
  const line = r.stderr.split('\n').find((l) => l.startsWith('MODULES '));
  assert.ok(line, r.stderr);
  const urls = (JSON.parse(line.slice('MODULES '.length)) as string[]).filter((u) => u.startsWith('file:')).map((u) => u.replace(`file://${repoRoot}/`, ''));
  const builtinLine = r.stderr.split('\n').find((l) => l.startsWith('BUILTINS '));
  const builtins = (JSON.parse(builtinLine!.slice('BUILTINS '.length)) as string[]).flatMap((m) => /^NativeModule (.+)$/.exec(m)?.[1] ?? []);
  return { code: r.code, urls, builtins };
}

const heavy = ['fastify', 'selfsigned', 'busboy', 'cli-progress', 'tar-stream', 'yaml', 'ajv'];
const packagesIn = ({ urls }: { urls: string[] }) => new Set(urls.flatMap((u) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1] ?? []));

test('--help and image list load neither the server, the importer nor the mirror code', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const cases: [string[], number][] = [
    [['--help'], 0],
    [['--data-dir', data, 'image', 'list'], 0],
    [['help', 'image'], 0],
    [['--data-dir', data, 'image', 'info', 'nothing'], 66], // no such image (not_found), after loading what it needs
  ];
  for (const [args, code] of cases) {
    const loaded = await loadedModules(work, join(repoRoot, 'src', 'main.ts'), args);
    assert.equal(loaded.code, code, `wharf ${args.join(' ')}`);
    const { urls } = loaded;
    const packages = packagesIn(loaded);
    for (const name of heavy) assert.ok(!packages.has(name), `wharf ${args.join(' ')} loads ${name}`);
    for (const own of ['src/server.ts', 'src/http/app.ts', 'src/core/import.ts', 'src/mirror/sync.ts', 'src/mirror/copy.ts']) {
      assert.ok(!urls.includes(own), `wharf ${args.join(' ')} loads ${own}`);
    }
    // Node's HTTP stack (a dozen modules) is for the server and remotes, not for these.
    assert.ok(!loaded.builtins.includes('http'), `wharf ${args.join(' ')} loads node:http`);
  }
  // The loading is lazy, not lost: the commands that need a module still get it.
  const listYaml = packagesIn(await loadedModules(work, join(repoRoot, 'src', 'main.ts'), ['--data-dir', data, 'image', 'list', '--format', 'yaml']));
  assert.ok(listYaml.has('yaml'));
  assert.ok(packagesIn(await loadedModules(work, join(repoRoot, 'src', 'main.ts'), ['serve', '--help'])).has('fastify'));
});

test("the server's modules do not load Node's fetch implementation (undici) nor util's parseArgs", async () => {
  // ES imports of node:http and node:util run getters that load them (src/builtins/).
  const probe = `await import(${JSON.stringify(join(repoRoot, 'src', 'server.ts'))}); await import(${JSON.stringify(join(repoRoot, 'src', 'mirror-server.ts'))});
console.log(process.moduleLoadList.filter((m) => m.includes('undici') || m.includes('parse_args')).join(' ') || 'none');`;
  const r = await runProcess(node, ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', probe]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'none');
});

test('the compiled build runs: help, a split import (hash thread), list', async (t) => {
  // Built into a tree of its own, so the test does not depend on (or touch) the checkout's dist/.
  const work = await tempDir(t);
  const out = join(work, 'build', 'dist');
  await mkdir(join(work, 'build'));
  await symlink(join(repoRoot, 'node_modules'), join(work, 'build', 'node_modules'));
  await copyFile(join(repoRoot, 'package.json'), join(work, 'build', 'package.json'));
  const tsc = await runProcess(node, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(repoRoot, 'tsconfig.build.json'), '--outDir', out]);
  assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr);

  const main = join(out, 'main.js');
  const cli = async (...args: string[]) => {
    const r = await runProcess(node, ['--disable-warning=ExperimentalWarning', main, ...args]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  assert.match(await cli('--help'), /Usage: wharf/);
  const data = join(work, 'data');
  const meta = await buildMetadataTarball(work, {});
  const rootfs = await buildSquashfs(work, { seed: 'startup' });
  const fingerprint = fingerprintFrom(await cli('--data-dir', data, 'image', 'import', meta.path, rootfs.path, '--alias', 'built'));
  assert.match(await cli('--data-dir', data, 'image', 'list'), new RegExp(`\\| built +\\| ${fingerprint.slice(0, 12)} \\|`));
  const loaded = await loadedModules(work, main, ['--data-dir', data, 'image', 'list']);
  assert.equal(loaded.code, 0);
  assert.ok(loaded.urls.some((u) => u.endsWith('/dist/cli/image.js')), 'ran the build');
  const packages = packagesIn(loaded);
  for (const name of heavy) assert.ok(!packages.has(name), `the build's image list loads ${name}`);
});
