/** `wharf remote ...`: the servers `image copy` and mirrors take images from. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { addRemote, listRemotes, removeRemote, setRemoteUrl } from '../mirror/remotes.ts';
import { checkFormat, render } from './output.ts';
import { withStore, type GlobalOptions } from './context.ts';


export function remoteCommands(remote: Command, globals: () => GlobalOptions) {
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
      process.stdout.write(await render(format, ['NAME', 'URL', 'PROTOCOL', 'PUBLIC', 'STATIC'], rows, data));
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
}
