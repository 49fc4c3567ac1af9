/** `wharf channel ...`: the channels' settings (retention), and what they hold. */
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { checkChannel, defaultChannel } from '../domain/channel.ts';
import { applyRetention } from '../core/retention.ts';
import { checkFormat, render } from './output.ts';
import { withStore, type CliContext } from './context.ts';

/** `--keep`: a number of versions, or `all` (retention off). */
function parseKeep(text: string): number | null {
  if (text === 'all') return null;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new AppError(ErrorCodes.invalidArgument, `--keep ${text}: not a number of versions (1 or more) nor "all"`);
  return n;
}

export function channelCommands(channel: Command, cli: CliContext) {
  channel
    .command('list')
    .alias('ls')
    .description('List the channels: their retention and how many images each holds')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const { settings, images } = await withStore(cli, async (store) => ({ settings: await store.meta.listChannels(), images: await store.meta.listImages() }));
      const names = [...new Set([defaultChannel, ...settings.map((s) => s.name), ...images.flatMap((i) => i.channels)])].sort();
      const data = names.map((name) => ({
        name,
        keep: settings.find((s) => s.name === name)?.keep ?? null,
        images: images.filter((i) => i.channels.includes(name)).length,
        pinned: images.filter((i) => i.pinned.includes(name)).length,
      }));
      const rows = data.map((c) => [c.name, c.keep === null ? 'all' : String(c.keep), String(c.images), String(c.pinned)]);
      cli.io.stdout.write(await render(format, ['NAME', 'KEEP', 'IMAGES', 'PINNED'], rows, data));
    });

  channel
    .command('set')
    .description("Set a channel's retention: the newest versions of each product it keeps, besides pinned ones")
    .argument('<name>')
    .requiredOption('--keep <n>', 'versions kept per product, or "all"')
    .action(async (name: string, opts: { keep: string }) => {
      checkChannel(name);
      const keep = parseKeep(opts.keep);
      const applied = await withStore(cli, async (store) => {
        await store.meta.putChannel({ name, keep });
        return applyRetention(store, [name]);
      });
      cli.io.stdout.write(`Channel ${name} keeps ${keep === null ? 'every version' : `the ${keep} newest versions of each product`}` + (applied.demoted.length ? `; ${applied.demoted.length} images left it, ${applied.deleted.length} of them the store` : '') + '\n');
    });
}
