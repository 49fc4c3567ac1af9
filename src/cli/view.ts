/** `wharf view ...`: private views (a channel and filters, open to token holders) and their tokens. */
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { parseDuration } from '../domain/duration.ts';
import { tokenOpensView, viewUrl, type ViewToken } from '../domain/view.ts';
import { addView, addViewToken, listViewTokens } from '../core/views.ts';
import { checkFormat, collect, render } from './output.ts';
import { cliConfig, withStore, type CliContext } from './context.ts';
import { serverAddresses } from './trust.ts';

/** What a token's holders use: `--url`, or the server's https address as configured. */
async function baseUrl(cli: CliContext, url: string | undefined): Promise<string> {
  if (url !== undefined) {
    const parsed = URL.canParse(url) ? new URL(url) : undefined;
    if (parsed?.protocol !== 'https:' || parsed.username || parsed.password || parsed.search || parsed.hash) {
      throw new AppError(ErrorCodes.invalidArgument, `--url ${url.slice(0, 200)}: not an https:// URL of this server`, { hint: 'Such as https://images.example.com or https://203.0.113.7:8443' });
    }
    return parsed.href.replace(/\/+$/, '');
  }
  const [address] = serverAddresses((await cliConfig(cli)).https);
  if (!address) throw new AppError(ErrorCodes.invalidArgument, 'This host has no address clients could reach: give --url');
  return `https://${address}`;
}

const tokenState = (t: ViewToken, now: Date) => (t.revokedAt !== null ? 'revoked' : tokenOpensView(t, now) ? 'live' : 'expired');

export function viewCommands(view: Command, cli: CliContext) {
  view
    .command('add')
    .description('Add a private view: a channel and property filters, private images included, open to the holders of its tokens')
    .argument('<name>')
    .option('--channel <channel>', 'the channel it shows', 'default')
    .option('--filter <key=value>', 'only images whose property matches (repeatable; all must)', collect, [])
    .action(async (name: string, opts: { channel: string; filter: string[] }) => {
      const added = await withStore(cli, (store) => addView(store, { name, channel: opts.channel, filters: opts.filter }));
      cli.io.stdout.write(`View ${added.name} shows channel ${added.channel}${opts.filter.length ? ` where ${opts.filter.join(', ')}` : ''}; give it a token with: wharf view token add ${added.name}\n`);
    });

  view
    .command('list')
    .alias('ls')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const { views, tokens } = await withStore(cli, async (store) => ({ views: await store.meta.listViews(), tokens: await store.meta.listViewTokens() }));
      const now = new Date();
      const data = views.map((v) => ({ ...v, live_tokens: tokens.filter((t) => t.view === v.name && tokenOpensView(t, now)).length }));
      const rows = data.map((v) => [v.name, v.channel, Object.entries(v.filters).map(([k, x]) => `${k}=${x}`).join(' '), String(v.live_tokens), v.createdAt]);
      cli.io.stdout.write(await render(format, ['NAME', 'CHANNEL', 'FILTERS', 'LIVE TOKENS', 'ADDED'], rows, data));
    });

  view
    .command('remove')
    .alias('rm')
    .description('Remove a view; its tokens and every URL they handed out stop at once')
    .argument('<name>')
    .action(async (name: string) => {
      await withStore(cli, (store) => store.meta.removeView(name));
    });

  const token = view.command('token').description("A view's tokens: each is a remote URL for lxc and incus");
  token
    .command('add')
    .description('Make a token and print the remote URL that carries it (shown once: the store keeps its hash only)')
    .argument('<view>')
    .option('--expires <duration>', 'how long it opens the view, such as 90d or 12h (default: until revoked)')
    .option('--description <text>', 'who or what it is for', '')
    .option('--url <https-url>', 'the address clients reach this server at (default: the configured https address)')
    .action(async (name: string, opts: { expires?: string; description: string; url?: string }) => {
      const base = await baseUrl(cli, opts.url);
      const expiresInSeconds = opts.expires === undefined ? undefined : parseDuration(opts.expires);
      const { record, token: secret } = await withStore(cli, (store) => addViewToken(store, name, { expiresInSeconds, description: opts.description }));
      const url = viewUrl(base, name, secret);
      // The URL alone on stdout, for scripts; how to use it on stderr.
      cli.io.stdout.write(`${url}\n`);
      cli.io.stderr.write(
        `Token ${record.id}${record.expiresAt ? `, expires ${record.expiresAt}` : ''}. Add it as a remote with:\n` +
          `  incus remote add ${name} ${url} --protocol=simplestreams\n  lxc remote add ${name} ${url} --protocol=simplestreams\n`,
      );
    });

  token
    .command('list')
    .alias('ls')
    .argument('[view]', "one view's tokens (default: every view's)")
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (name: string | undefined, opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const tokens = await withStore(cli, (store) => listViewTokens(store, name));
      const now = new Date();
      // The hash stays in the store: nothing a listing shows opens anything.
      const data = tokens.map((t) => ({ id: t.id, view: t.view, state: tokenState(t, now), description: t.description, created_at: t.createdAt, expires_at: t.expiresAt, revoked_at: t.revokedAt }));
      const rows = data.map((t) => [t.id, t.view, t.state, t.description, t.created_at, t.expires_at ?? 'never']);
      cli.io.stdout.write(await render(format, ['ID', 'VIEW', 'STATE', 'DESCRIPTION', 'CREATED', 'EXPIRES'], rows, data));
    });

  token
    .command('revoke')
    .description('Revoke a token (or --all of the view): its URL stops at once, the file URLs it handed out after the grace period')
    .argument('<view>')
    .argument('[id]')
    .option('--all', "every token of the view")
    .action(async (name: string, id: string | undefined, opts: { all?: boolean }) => {
      if ((id === undefined) === !opts.all) throw new AppError(ErrorCodes.invalidArgument, 'Give the id of one token, or --all');
      const revoked = await withStore(cli, (store) => store.meta.revokeViewTokens(name, id));
      cli.io.stdout.write(`Revoked ${revoked} token${revoked === 1 ? '' : 's'} of view ${name}\n`);
    });
}
