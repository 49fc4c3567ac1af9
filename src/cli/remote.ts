/** `wharf remote ...`: the servers `image copy` and mirrors take images from. */
import type { Command } from 'commander';
import { addRemote, listRemotes, removeRemote, setRemoteUrl } from '../mirror/remotes.ts';
import { checkFormat, render } from './output.ts';
import { readText, withStore, type CliContext } from './context.ts';

export function remoteCommands(remote: Command, cli: CliContext) {
  remote
    .command('add')
    .argument('<name>')
    .argument('<url>', 'https URL, or a directory holding a simplestreams tree')
    .option('--protocol <protocol>', 'simplestreams or lxd', 'simplestreams')
    .option('--public', 'an unauthenticated image server')
    .option('--certificate <pemfile>', 'pin this server certificate instead of trusting the system CA store')
    .action(async (name: string, url: string, opts: { protocol: string; public?: boolean; certificate?: string }) => {
      const certificate = opts.certificate ? await readText(opts.certificate) : undefined;
      await withStore(cli, (store) => addRemote(store, { name, url, protocol: opts.protocol, public: opts.public, certificate }));
    });

  remote
    .command('list')
    .alias('ls')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const remotes = await withStore(cli, (store) => listRemotes(store));
      const rows = remotes.map((r) => [r.name, r.url, r.protocol, r.public ? 'YES' : 'NO', r.static ? 'YES' : 'NO']);
      const data = remotes.map((r) => ({ name: r.name, url: r.url, protocol: r.protocol, public: r.public, static: r.static }));
      cli.io.stdout.write(await render(format, ['NAME', 'URL', 'PROTOCOL', 'PUBLIC', 'STATIC'], rows, data));
    });

  remote
    .command('remove')
    .alias('rm')
    .argument('<name>')
    .action(async (name: string) => withStore(cli, (store) => removeRemote(store, name)));

  remote
    .command('set-url')
    .argument('<name>')
    .argument('<url>')
    .action(async (name: string, url: string) => withStore(cli, (store) => setRemoteUrl(store, name, url)));
}
