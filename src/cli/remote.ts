/** `wharf remote ...`: the servers `image copy` and mirrors take images from. */
import type { Command } from 'commander';
import { addRemote, listRemotes, removeRemote, setRemoteUrl } from '../mirror/remotes.ts';
import { checkFormat, render } from './output.ts';
import { redactSecrets } from '../domain/redact.ts';
import { readText, withStore, type CliContext } from './context.ts';

export function remoteCommands(remote: Command, cli: CliContext) {
  remote
    .command('add')
    .argument('<name>')
    .argument('<url>', 'https URL, or a directory holding a simplestreams tree')
    .option('--protocol <protocol>', 'simplestreams or lxd', 'simplestreams')
    .option('--public', 'an unauthenticated image server')
    .option('--certificate <pemfile>', 'pin this server certificate instead of trusting the system CA store')
    .option('--gpg-key <file>', "OpenPGP public key (armored): use the server's index only when signed by it")
    .action(async (name: string, url: string, opts: { protocol: string; public?: boolean; certificate?: string; gpgKey?: string }) => {
      const certificate = opts.certificate ? await readText(opts.certificate) : undefined;
      let gpgKey: string | undefined;
      if (opts.gpgKey) {
        gpgKey = await readText(opts.gpgKey);
        await (await import('../signing/openpgp.ts')).readPublicKeys(gpgKey);
      }
      await withStore(cli, (store) => addRemote(store, { name, url, protocol: opts.protocol, public: opts.public, certificate, gpgKey }));
    });

  remote
    .command('list')
    .alias('ls')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .option('--show-secrets', "show each URL whole, with the credentials in it (user:password@, tokens)")
    .action(async (opts: { format: string; showSecrets?: boolean }) => {
      const format = checkFormat(opts.format);
      // Listings get pasted into tickets and chats: credentials only when asked for.
      const remotes = (await withStore(cli, (store) => listRemotes(store))).map((r) => (opts.showSecrets ? r : { ...r, url: redactSecrets(r.url) }));
      const rows = remotes.map((r) => [r.name, r.url, r.protocol, r.public ? 'YES' : 'NO', r.static ? 'YES' : 'NO', r.gpgKey ? 'YES' : 'NO']);
      const data = remotes.map((r) => ({ name: r.name, url: r.url, protocol: r.protocol, public: r.public, static: r.static, signed: r.gpgKey !== '' }));
      cli.io.stdout.write(await render(format, ['NAME', 'URL', 'PROTOCOL', 'PUBLIC', 'STATIC', 'SIGNED'], rows, data));
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
