/** `wharf token ...`: builders' push tokens (domain/push-token.ts). */
import type { Command } from 'commander';
import { parseDuration } from '../domain/duration.ts';
import { pushTokenLive } from '../domain/push-token.ts';
import { addPushToken } from '../core/push-tokens.ts';
import { checkFormat, collect, render } from './output.ts';
import { withStore, type CliContext } from './context.ts';

export function tokenCommands(token: Command, cli: CliContext) {
  token
    .command('add')
    .description("Make a builder's push token (shown once): it uploads images of matching products into the staging channel, private")
    .argument('<name>', 'who or what it is for')
    .requiredOption('--push <glob>', 'products it may push, os:release:architecture:variant with * (repeatable)', collect, [])
    .option('--expires <duration>', 'how long it works, such as 30d (default: until revoked)')
    .action(async (name: string, opts: { push: string[]; expires?: string }) => {
      const expiresInSeconds = opts.expires === undefined ? undefined : parseDuration(opts.expires);
      const { record, token: secret } = await withStore(cli, (store) => addPushToken(store, name, { globs: opts.push, expiresInSeconds }));
      cli.io.stdout.write(`${secret}\n`);
      cli.io.stderr.write(
        `Token ${record.id} pushes ${record.globs.join(', ')}${record.expiresAt ? ` until ${record.expiresAt}` : ''}. Upload with:\n` +
          `  curl -H "Authorization: Bearer TOKEN" --data-binary @image.tar.gz https://HOST:8443/1.0/images\n`,
      );
    });

  token
    .command('list')
    .alias('ls')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const tokens = await withStore(cli, (store) => store.meta.listPushTokens());
      const now = new Date();
      const data = tokens.map((t) => ({ id: t.id, name: t.name, push: t.globs, state: t.revokedAt ? 'revoked' : pushTokenLive(t, now) ? 'live' : 'expired', created_at: t.createdAt, expires_at: t.expiresAt }));
      const rows = data.map((t) => [t.id, t.name, t.push.join(' '), t.state, t.created_at, t.expires_at ?? 'never']);
      cli.io.stdout.write(await render(format, ['ID', 'NAME', 'PUSH', 'STATE', 'CREATED', 'EXPIRES'], rows, data));
    });

  token
    .command('revoke')
    .argument('<id>')
    .description('Revoke a push token: it uploads nothing more')
    .action(async (id: string) => {
      const revoked = await withStore(cli, (store) => store.meta.revokePushToken(id));
      cli.io.stdout.write(revoked ? `Revoked push token ${id}\n` : `Push token ${id} was revoked already\n`);
    });
}
