/** `wharf webhook ...`: the webhooks of config.yaml (domain/webhooks.ts), where each stands, and every attempt to deliver. */
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { openWebhooks } from '../factory.ts';
import type { WebhookLedger } from '../meta/webhooks.ts';
import { checkFormat, humanDate, render } from './output.ts';
import { cliConfig, cliLogger, type CliContext } from './context.ts';

async function withLedger<T>(cli: CliContext, fn: (ledger: WebhookLedger) => Promise<T>): Promise<T> {
  const config = await cliConfig(cli);
  const ledger = await openWebhooks(config, cliLogger(cli, config));
  try {
    return await fn(ledger);
  } finally {
    await ledger.close();
  }
}

export function webhookCommands(webhook: Command, cli: CliContext) {
  webhook
    .command('list')
    .alias('ls')
    .description('List the webhooks of config.yaml: where each is sent, which events, how far it got')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const hooks = (await cliConfig(cli)).webhooks;
      const states = await withLedger(cli, (ledger) => ledger.states());
      // Never the secret: it signs every body.
      const data = hooks.map((h) => {
        const state = states.find((s) => s.name === h.name);
        return { name: h.name, url: h.url, events: h.events, cursor: state?.cursor ?? null, failed_attempts: state?.attempts ?? 0, next_attempt_at: state?.nextAttemptAt ?? null };
      });
      const rows = data.map((d) => [d.name, d.url, d.events.join(' '), d.cursor === null ? '-' : String(d.cursor), String(d.failed_attempts), d.next_attempt_at ? humanDate(d.next_attempt_at) : '-']);
      cli.io.stdout.write(await render(format, ['NAME', 'URL', 'EVENTS', 'SENT UP TO', 'FAILED', 'RETRY AT'], rows, data));
    });

  webhook
    .command('deliveries')
    .description('Show the delivery log, newest first: every attempt, its answer and how long it took')
    .argument('[name]', 'one webhook')
    .option('-n, --limit <n>', 'at most this many', '50')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (name: string | undefined, opts: { limit: string; format: string }) => {
      const format = checkFormat(opts.format);
      const limit = Number(opts.limit);
      if (!Number.isSafeInteger(limit) || limit < 1) throw new AppError(ErrorCodes.invalidArgument, `--limit ${opts.limit}: not a positive number`);
      const log = await withLedger(cli, (ledger) => ledger.deliveries(name, limit));
      const rows = log.map((d) => [humanDate(d.at), d.webhook, String(d.event), d.type, String(d.attempt), d.outcome, d.status === null ? '-' : String(d.status), `${d.durationMs} ms`, d.error]);
      cli.io.stdout.write(await render(format, ['WHEN', 'WEBHOOK', 'EVENT', 'TYPE', 'ATTEMPT', 'OUTCOME', 'STATUS', 'TOOK', 'ERROR'], rows, log));
    });
}
