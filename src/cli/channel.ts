/** `wharf channel ...`: the channels' settings (retention), and what they hold. */
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { checkChannel, defaultChannel, stagingChannel } from '../domain/channel.ts';
import { gateOf, type Gate } from '../domain/pipeline.ts';
import { cliConfig } from './context.ts';
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
    .description('List the channels: their retention, their gate and how many images each holds')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const hooks = (await cliConfig(cli)).testHooks.length > 0;
      const { settings, images } = await withStore(cli, async (store) => ({ settings: await store.meta.listChannels(), images: await store.meta.listImages() }));
      const names = [...new Set([defaultChannel, ...settings.map((s) => s.name), ...images.flatMap((i) => i.channels)])].sort();
      const data = names.map((name) => {
        const setting = settings.find((s) => s.name === name);
        return {
          name,
          keep: setting?.keep ?? null,
          gate: name === stagingChannel ? null : gateOf(name, setting?.gate, hooks),
          images: images.filter((i) => i.channels.includes(name)).length,
          pinned: images.filter((i) => i.pinned.includes(name)).length,
        };
      });
      const rows = data.map((c) => [c.name, c.keep === null ? 'all' : String(c.keep), c.gate ?? '-', String(c.images), String(c.pinned)]);
      cli.io.stdout.write(await render(format, ['NAME', 'KEEP', 'GATE', 'IMAGES', 'PINNED'], rows, data));
    });

  channel
    .command('set')
    .description("Set a channel's retention (the newest versions of each product it keeps, besides pinned ones) or its gate (how staged images enter it)")
    .argument('<name>')
    .option('--keep <n>', 'versions kept per product, or "all"')
    .option('--gate <gate>', 'auto (promote a build once its tests pass), manual (wharf image promote), or default')
    .action(async (name: string, opts: { keep?: string; gate?: string }) => {
      checkChannel(name);
      if (opts.keep === undefined && opts.gate === undefined) throw new AppError(ErrorCodes.invalidArgument, 'Nothing to set', { hint: 'Give --keep N, --gate auto|manual|default, or both.' });
      if (opts.gate !== undefined && !['auto', 'manual', 'default'].includes(opts.gate)) throw new AppError(ErrorCodes.invalidArgument, `--gate ${opts.gate}: not auto, manual or default`);
      if (opts.gate !== undefined && name === stagingChannel) throw new AppError(ErrorCodes.invalidArgument, `The ${stagingChannel} channel has no gate: images are promoted out of it`);
      const keep = opts.keep === undefined ? undefined : parseKeep(opts.keep);
      const applied = await withStore(cli, async (store) => {
        const current = (await store.meta.listChannels()).find((s) => s.name === name) ?? { name, keep: null, gate: null };
        const gate = opts.gate === undefined ? current.gate : opts.gate === 'default' ? null : (opts.gate as Gate);
        await store.meta.putChannel({ name, keep: keep === undefined ? current.keep : keep, gate });
        return keep === undefined ? undefined : applyRetention(store, [name]);
      });
      const said: string[] = [];
      if (keep !== undefined) said.push(`keeps ${keep === null ? 'every version' : `the ${keep} newest versions of each product`}` + (applied?.demoted.length ? `; ${applied.demoted.length} images left it, ${applied.deleted.length} of them the store` : ''));
      if (opts.gate !== undefined) said.push(opts.gate === 'default' ? 'has the default gate' : `has the ${opts.gate} gate`);
      cli.io.stdout.write(`Channel ${name} ${said.join(', and ')}\n`);
    });
}
