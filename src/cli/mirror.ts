/** `wharf mirror ...`: filtered, verified copies of other image servers. */
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { filterKeys, syncMirror } from '../mirror/sync.ts';
import { getRemote } from '../mirror/remotes.ts';
import { exportTree, importTree } from '../mirror/tree.ts';
import { prune } from '../core/prune.ts';
import type { MirrorRecord } from '../meta/store.ts';
import { checkFormat, humanSize, render, collect } from './output.ts';
import { withStore, type GlobalOptions } from './context.ts';


/** "90", "90s", "15m", "6h", "2d" -> seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new AppError(ErrorCodes.invalidArgument, `Invalid duration "${text}"`, { hint: 'Use e.g. 90s, 15m, 6h or 2d.' });
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}

export function mirrorCommands(mirror: Command, globals: () => GlobalOptions) {
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
      const filters: Record<string, string> = {};
      for (const f of opts.filter) {
        const [key, value] = [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)];
        if (!f.includes('=') || !(filterKeys as readonly string[]).includes(key) || !value) {
          throw new AppError(ErrorCodes.invalidArgument, `Invalid filter "${f}"`, { hint: `Use KEY=VALUE with KEY one of ${filterKeys.join(', ')}.` });
        }
        filters[key] = value;
      }
      const keep = Number(opts.keep);
      if (!Number.isInteger(keep) || keep < 1) throw new AppError(ErrorCodes.invalidArgument, '--keep must be a whole number of at least 1');
      const types = opts.types.split(',').map((t) => t.trim());
      for (const t of types) if (t !== 'container' && t !== 'virtual-machine') throw new AppError(ErrorCodes.invalidArgument, `Unknown image type "${t}"`);
      await withStore(globals(), async (store) => {
        const r = await getRemote(store, remote);
        if (r.protocol !== 'simplestreams') throw new AppError(ErrorCodes.invalidArgument, `Remote "${remote}" is not a simplestreams server`);
        if ((await store.meta.listMirrors()).some((m) => m.name === name)) throw new AppError(ErrorCodes.conflict, `Mirror "${name}" already exists`);
        const record: MirrorRecord = {
          name,
          remote,
          filters,
          types: types as MirrorRecord['types'],
          keep,
          intervalSeconds: parseDuration(opts.interval),
          lazy: opts.lazy ?? false,
          lastSync: null,
          lastError: null,
        };
        await store.meta.putMirror(record);
      });
    });

  mirror
    .command('list')
    .alias('ls')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const mirrors = await withStore(globals(), (store) => store.meta.listMirrors());
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
      process.stdout.write(await render(format, ['NAME', 'REMOTE', 'FILTERS', 'TYPES', 'KEEP', 'INTERVAL', 'LAST SYNC', 'LAST ERROR'], rows, mirrors));
    });

  mirror
    .command('remove')
    .alias('rm')
    .argument('<name>')
    .description('Forget a mirror; its images stay, as ordinary images')
    .action(async (name: string) => withStore(globals(), (store) => store.meta.removeMirror(name)));

  mirror
    .command('sync')
    .argument('[name]', 'one mirror (default: all)')
    .option('--dry-run', 'only print what would be added and removed')
    .action(async (name: string | undefined, opts: { dryRun?: boolean }) => {
      const failures = await withStore(globals(), async (store) => {
        const mirrors = (await store.meta.listMirrors()).filter((m) => !name || m.name === name);
        if (name && mirrors.length === 0) throw new AppError(ErrorCodes.notFound, `Mirror "${name}" not found`);
        let failed = 0;
        for (const m of mirrors) {
          const report = await syncMirror(store, m, { dryRun: opts.dryRun ?? false });
          const addBytes = report.plan.add.reduce((n, i) => n + i.metadata.size + (i.rootfs?.size ?? 0), 0);
          const removeBytes = report.plan.remove.reduce((n, i) => n + i.size, 0);
          const lines = [
            `${m.name}: ${opts.dryRun ? 'would add' : 'added'} ${opts.dryRun ? report.plan.add.length : report.added.length} images (${humanSize(addBytes)}), ${opts.dryRun ? 'would remove' : 'removed'} ${report.plan.remove.length} (${humanSize(removeBytes)})`,
            ...report.plan.add.map((i) => `  + ${i.fingerprint.slice(0, 12)} ${i.productKey} ${i.version} ${i.type} ${humanSize(i.metadata.size + (i.rootfs?.size ?? 0))}`),
            ...report.plan.remove.map((i) => `  - ${i.fingerprint.slice(0, 12)} ${i.properties.os ?? ''} ${i.properties.release ?? ''} ${i.properties.serial ?? ''} ${humanSize(i.size)}`),
            ...report.failed.map((f) => `  ! ${f.fingerprint.slice(0, 12)} ${f.error}`),
          ];
          process.stdout.write(lines.join('\n') + '\n');
          failed += report.failed.length;
        }
        return failed;
      });
      if (failures) throw new AppError(ErrorCodes.unavailable, `${failures} images could not be mirrored; the next sync tries again`);
    });
}

export function treeCommands(tree: Command, globals: () => GlobalOptions) {
  tree
    .command('export')
    .argument('<dir>')
    .argument('[filters...]', 'as in image list')
    .description('Write the public images (or those matching FILTERs) as a tree any web server can serve')
    .action(async (dir: string, filters: string[]) => {
      const { images, files } = await withStore(globals(), (store) => exportTree(store, dir, filters));
      process.stdout.write(`Exported ${images} images (${files} files) to ${dir}\n`);
    });
  tree
    .command('import')
    .argument('<dir>')
    .description('Load a tree written by tree export (or any simplestreams tree), verifying every file')
    .action(async (dir: string) => {
      const { imported, skipped } = await withStore(globals(), (store) => importTree(store, dir));
      process.stdout.write(`Imported ${imported.length} images, ${skipped} already present\n`);
    });
}

export function pruneCommand(command: Command, globals: () => GlobalOptions) {
  command
    .option('--keep <n>', 'versions kept per product')
    .option('--older-than <duration>', 'remove versions uploaded longer ago (never the newest)')
    .option('--dry-run', 'only print what would go')
    .action(async (opts: { keep?: string; olderThan?: string; dryRun?: boolean }) => {
      const keep = opts.keep === undefined ? undefined : Number(opts.keep);
      if (keep !== undefined && (!Number.isInteger(keep) || keep < 1)) throw new AppError(ErrorCodes.invalidArgument, '--keep must be a whole number of at least 1');
      const result = await withStore(globals(), (store) =>
        prune(store, {
          ...(keep !== undefined ? { keep } : {}),
          ...(opts.olderThan !== undefined ? { olderThanSeconds: parseDuration(opts.olderThan) } : {}),
          dryRun: opts.dryRun ?? false,
        }),
      );
      const verb = opts.dryRun ? 'Would remove' : 'Removed';
      process.stdout.write(
        [
          `${verb} ${result.images.length} images and ${result.blobs.length} files`,
          ...result.images.map((i) => `  - ${i.fingerprint.slice(0, 12)} ${i.properties.os ?? ''} ${i.properties.release ?? ''} ${i.properties.serial ?? i.createdAt} ${humanSize(i.size)}`),
        ].join('\n') + '\n',
      );
    });
}
