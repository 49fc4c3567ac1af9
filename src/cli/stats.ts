/** `wharf stats`: downloads per product, image or day (usage statistics, see core/usage.ts). */
import { Option, type Command } from 'commander';
import { sinceDay } from '../core/usage.ts';
import { usageTotals } from '../domain/usage.ts';
import { checkFormat, render } from './output.ts';
import { withUsage, type CliContext } from './context.ts';

const groupings = ['product', 'image', 'day'] as const;

export function statsCommand(command: Command, cli: CliContext) {
  command
    .option('--since <when>', 'first day to count: a date (2026-11-01) or a duration back from now (30d); default: all')
    .addOption(new Option('--by <what>', 'sum by product, image or day').choices(groupings).default('product'))
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { since?: string; by: string; format: string }) => {
      const format = checkFormat(opts.format);
      const by = opts.by as (typeof groupings)[number];
      const since = opts.since === undefined ? undefined : sinceDay(opts.since);
      const counts = await withUsage(cli, (usage) => usage.list(since === undefined ? {} : { since }));
      const totals = usageTotals(counts, by);
      // An image's product is the one its downloads were counted under (the newest, if it moved).
      const productOf = new Map(counts.map((c) => [c.fingerprint, c.product]));
      const head = by === 'image' ? ['FINGERPRINT', 'PRODUCT'] : [by.toUpperCase()];
      const rows = totals.map((t) => [
        ...(by === 'image' ? [t.key.slice(0, 12), productOf.get(t.key) ?? ''] : [t.key]),
        String(t.total),
        String(t.byVia.file),
        String(t.byVia.redirect),
        String(t.byVia.export),
      ]);
      const data = totals.map((t) => ({ [by === 'image' ? 'fingerprint' : by]: t.key, ...(by === 'image' ? { product: productOf.get(t.key) } : {}), downloads: t.total, ...t.byVia }));
      cli.io.stdout.write(await render(format, [...head, 'DOWNLOADS', 'SERVED', 'REDIRECTED', 'EXPORTED'], rows, data));
    });
}
