/** `wharf remote ...` and `wharf image copy REMOTE:IMAGE`. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { addRemote, getRemote, listRemotes, removeRemote, setRemoteUrl, splitRef } from '../mirror/remotes.ts';
import { copyImage } from '../mirror/copy.ts';
import { refreshImages } from '../mirror/refresh.ts';
import { checkFormat, render, collect } from './output.ts';
import { progress } from './progress.ts';
import { withStore, type GlobalOptions } from './context.ts';


export function remoteCommands(program: Command, image: Command, globals: () => GlobalOptions) {
  const remote = program.command('remote').description('Manage the image servers wharf copies and mirrors from');

  remote
    .command('add')
    .argument('<name>')
    .argument('<url>', 'https URL, or a directory holding a simplestreams tree')
    .option('--protocol <protocol>', 'simplestreams or lxd', 'simplestreams')
    .option('--public', 'an unauthenticated image server')
    .option('--certificate <pemfile>', 'pin this server certificate instead of trusting the system CA store')
    .action(async (name: string, url: string, opts: { protocol: string; public?: boolean; certificate?: string }) => {
      if (opts.protocol !== 'simplestreams' && opts.protocol !== 'lxd') {
        throw new AppError(ErrorCodes.invalidArgument, `Unknown protocol "${opts.protocol}"`, { hint: 'Use simplestreams or lxd.' });
      }
      const certificate = opts.certificate ? await readFile(opts.certificate, 'utf8') : '';
      await withStore(globals(), (store) =>
        addRemote(store, { name, url: url.replace(/\/+$/, ''), protocol: opts.protocol as 'simplestreams' | 'lxd', public: opts.public ?? opts.protocol === 'simplestreams', certificate }),
      );
    });

  remote
    .command('list')
    .alias('ls')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const remotes = await withStore(globals(), (store) => listRemotes(store));
      const rows = remotes.map((r) => [r.name, r.url, r.protocol, r.public ? 'YES' : 'NO', r.static ? 'YES' : 'NO']);
      const data = remotes.map((r) => ({ name: r.name, url: r.url, protocol: r.protocol, public: r.public, static: r.static }));
      process.stdout.write(render(format, ['NAME', 'URL', 'PROTOCOL', 'PUBLIC', 'STATIC'], rows, data));
    });

  remote
    .command('remove')
    .alias('rm')
    .argument('<name>')
    .action(async (name: string) => withStore(globals(), (store) => removeRemote(store, name)));

  remote
    .command('set-url')
    .argument('<name>')
    .argument('<url>')
    .action(async (name: string, url: string) => withStore(globals(), (store) => setRemoteUrl(store, name, url.replace(/\/+$/, ''))));

  image
    .command('refresh')
    .description('Check images copied with --auto-update for a newer version now')
    .argument('[images...]')
    .action(async (refs: string[]) => {
      const results = await withStore(globals(), (store) => refreshImages(store, refs));
      for (const r of results) {
        process.stdout.write(r.error ? `${r.fingerprint}: ${r.error}\n` : r.updatedTo ? `${r.fingerprint}: updated to ${r.updatedTo}\n` : `${r.fingerprint}: up to date\n`);
      }
      if (results.some((r) => r.error)) throw new AppError(ErrorCodes.unavailable, 'Some images could not be refreshed');
    });

  image
    .command('copy')
    .description('Copy an image from a remote into the store: every file is checked against its sha256')
    .argument('<source>', 'REMOTE:IMAGE (alias or fingerprint)')
    .option('--alias <name>', 'alias for the copy (repeatable)', collect, [])
    .option('--copy-aliases', 'also take the aliases the image has on the remote')
    .option('--auto-update', 'follow the alias: refresh to newer versions')
    .option('--vm', 'the virtual-machine image of that alias')
    .option('--private', 'keep the copy out of the public index')
    .action(async (ref: string, opts: { alias: string[]; copyAliases?: boolean; autoUpdate?: boolean; vm?: boolean; private?: boolean }) => {
      const { remote: remoteName, image: imageRef } = splitRef(ref);
      if (!remoteName) throw new AppError(ErrorCodes.invalidArgument, `"${ref}" names no remote`, { hint: 'Use REMOTE:IMAGE, e.g. images:debian/12.' });
      const copied = await withStore(globals(), async (store) => {
        const remote = await getRemote(store, remoteName);
        let bar: ReturnType<typeof progress> | undefined;
        try {
          return await copyImage(store, remote, imageRef, {
            type: opts.vm ? 'virtual-machine' : 'container',
            aliases: opts.alias,
            copyAliases: opts.copyAliases ?? false,
            autoUpdate: opts.autoUpdate ?? false,
            public: !opts.private,
            onStart: (total) => (bar = progress('Copying', total)),
            onBytes: (n) => bar?.add(n),
          });
        } finally {
          bar?.stop();
        }
      });
      process.stdout.write(`Image copied successfully! Fingerprint: ${copied.fingerprint}\n`);
    });
}
