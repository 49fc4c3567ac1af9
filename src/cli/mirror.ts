/** `wharf mirror ...`: filtered, verified copies of other image servers. */
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { parseDuration } from '../domain/duration.ts';
import { filterKeys } from '../mirror/sync.ts';
import { addMirror, syncMirrors } from '../mirror/mirrors.ts';
import { exportTree, importTree } from '../mirror/tree.ts';
import { prune } from '../core/prune.ts';
import { checkFormat, humanSize, render, collect } from './output.ts';
import { cliConfig, withStore, type CliContext } from './context.ts';

export function mirrorCommands(mirror: Command, cli: CliContext) {
  mirror
    .command('add')
    .argument('<name>')
    .argument('<remote>', 'a simplestreams remote (see wharf remote list)')
    .option('--filter <key=value>', `only images whose ${filterKeys.join(', ')} match (repeatable)`, collect, [])
    .option('--keep <n>', 'versions kept per product', '3')
    .option('--interval <duration>', 'how often `wharf serve` syncs it (0 = only by hand)', '6h')
    .option('--types <types>', 'container, virtual-machine or both', 'container,virtual-machine')
    .option('--lazy', 'publish the index at once and fetch each file on its first request')
    .action(async (name: string, remote: string, opts: { filter: string[]; keep: string; interval: string; types: string; lazy?: boolean }) => {
      const intervalSeconds = parseDuration(opts.interval);
      const types = opts.types.split(',').map((t) => t.trim());
      await withStore(cli, (store) => addMirror(store, { name, remote, filters: opts.filter, keep: Number(opts.keep), intervalSeconds, types, lazy: opts.lazy ?? false }));
    });

  mirror
    .command('list')
    .alias('ls')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const mirrors = await withStore(cli, (store) => store.meta.listMirrors());
      const rows = mirrors.map((m) => [
        m.name,
        m.remote,
        Object.entries(m.filters).map(([k, v]) => `${k}=${v}`).join('\n'),
        m.types.join(','),
        String(m.keep),
        `${m.intervalSeconds}s`,
        m.lastSync ?? 'never',
        m.lastError ?? '',
      ]);
      cli.io.stdout.write(await render(format, ['NAME', 'REMOTE', 'FILTERS', 'TYPES', 'KEEP', 'INTERVAL', 'LAST SYNC', 'LAST ERROR'], rows, mirrors));
    });

  mirror
    .command('remove')
    .alias('rm')
    .argument('<name>')
    .description('Forget a mirror; its images stay, as ordinary images')
    .action(async (name: string) => withStore(cli, (store) => store.meta.removeMirror(name)));

  mirror
    .command('sync')
    .argument('[name]', 'one mirror (default: all)')
    .option('--dry-run', 'only print what would be added and removed')
    .action(async (name: string | undefined, opts: { dryRun?: boolean }) => {
      const { failed } = await withStore(cli, (store) =>
        syncMirrors(store, name, { dryRun: opts.dryRun ?? false }, (m, report) => {
          const addBytes = report.plan.add.reduce((n, i) => n + i.metadata.size + (i.rootfs?.size ?? 0), 0);
          const removeBytes = report.plan.remove.reduce((n, i) => n + i.size, 0);
          const lines = [
            `${m.name}: ${opts.dryRun ? 'would add' : 'added'} ${opts.dryRun ? report.plan.add.length : report.added.length} images (${humanSize(addBytes)}), ${opts.dryRun ? 'would remove' : 'removed'} ${report.plan.remove.length} (${humanSize(removeBytes)})`,
            ...report.plan.add.map((i) => `  + ${i.fingerprint.slice(0, 12)} ${i.productKey} ${i.version} ${i.type} ${humanSize(i.metadata.size + (i.rootfs?.size ?? 0))}`),
            ...report.plan.remove.map((i) => `  - ${i.fingerprint.slice(0, 12)} ${i.properties.os ?? ''} ${i.properties.release ?? ''} ${i.properties.serial ?? ''} ${humanSize(i.size)}`),
            ...report.failed.map((f) => `  ! ${f.fingerprint.slice(0, 12)} ${f.error}`),
          ];
          cli.io.stdout.write(lines.join('\n') + '\n');
        }),
      );
      if (failed) throw new AppError(ErrorCodes.unavailable, `${failed} images could not be mirrored; the next sync tries again`);
    });
}

export function treeCommands(tree: Command, cli: CliContext) {
  tree
    .command('export')
    .argument('<dir>')
    .argument('[filters...]', 'as in image list')
    .description('Write the public images (or those matching FILTERs) as a tree any web server can serve')
    .option('--portable', 'leave out what some clients misread (unified VM images: Incus before 7.1 reads them as containers)')
    .option('--channel <name>', "export this channel's root instead of the default one")
    .action(async (dir: string, filters: string[], opts: { portable?: boolean; channel?: string }) => {
      const { images, files, misread } = await withStore(cli, (store) => exportTree(store, dir, filters, { portable: opts.portable ?? false, ...(opts.channel ? { channel: opts.channel } : {}) }));
      cli.io.stdout.write(`Exported ${images} images (${files} files) to ${dir}\n`);
      if (misread) {
        cli.io.stderr.write(`Note: ${misread} unified VM images are in the tree; served statically, Incus before 7.1 reads them as containers (wharf serve answers each client its own view; --portable leaves them out)\n`);
      }
    });
  tree
    .command('import')
    .argument('<dir>')
    .description('Load a tree written by tree export (or any simplestreams tree), verifying every file')
    .action(async (dir: string) => {
      const { imported, skipped } = await withStore(cli, (store) => importTree(store, dir));
      cli.io.stdout.write(`Imported ${imported.length} images, ${skipped} already present\n`);
    });
}

export function pruneCommand(command: Command, cli: CliContext) {
  command
    .option('--keep <n>', 'versions kept per product')
    .option('--older-than <duration>', 'remove versions uploaded longer ago (never the newest)')
    .option('--dry-run', 'only print what would go')
    .action(async (opts: { keep?: string; olderThan?: string; dryRun?: boolean }) => {
      const keep = opts.keep === undefined ? undefined : Number(opts.keep);
      const config = await cliConfig(cli);
      const result = await withStore(cli, (store) =>
        prune(store, {
          stagingIdleMs: config.uploadTtl * 1000,
          ...(keep !== undefined ? { keep } : {}),
          ...(opts.olderThan !== undefined ? { olderThanSeconds: parseDuration(opts.olderThan) } : {}),
          dryRun: opts.dryRun ?? false,
        }),
      );
      const verb = opts.dryRun ? 'Would remove' : 'Removed';
      cli.io.stdout.write(
        [
          `${verb} ${result.images.length} images and ${result.blobs.length} files`,
          ...result.images.map((i) => `  - ${i.fingerprint.slice(0, 12)} ${i.properties.os ?? ''} ${i.properties.release ?? ''} ${i.properties.serial ?? i.createdAt} ${humanSize(i.size)}`),
        ].join('\n') + '\n',
      );
    });
}
