/**
 * `wharf image ...`: the store's CLI, shaped like `lxc image`. The modules that only some of
 * these commands need (the importer and its archive readers, the YAML library, progress bars,
 * the remote clients) are imported inside those commands' actions, so that `image list` and
 * the other quick commands start without them.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { applyImageEdit, deleteImages, exportImage, imageWithAliases, listImages, moveToChannel, pinInChannel, setProperty, unchangedSince, verifyImages } from '../core/images.ts';
import { applyRetention } from '../core/retention.ts';
import { resolveImage } from '../core/resolve.ts';
import { createAlias, deleteAlias, listAliases, renameAlias } from '../core/aliases.ts';
import { toApiImage } from '../domain/lxd-api.ts';
import { publishedClients } from '../domain/simplestreams.ts';
import type { IngestSource } from '../core/ingest.ts';
import { checkFormat, escapeTerminalControls, humanDate, humanSize, render, collect } from './output.ts';
import { cliConfig, withStore, withUsage, type CliContext } from './context.ts';
import { imageDownloads } from '../core/usage.ts';
import { cliActor } from './actor.ts';
import { inStaging, promoteStaged, rejectStaged } from '../pipeline/stage.ts';
import { checkChannel } from '../domain/channel.ts';
import { productKeyOf, serialOf } from '../domain/product.ts';
import type { Store } from '../core/context.ts';
import type { Image } from '../domain/image.ts';

function keyValues(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new AppError(ErrorCodes.invalidArgument, `Bad property "${pair}"`, { hint: 'Use KEY=VALUE.' });
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

async function fileSource(path: string): Promise<{ source: IngestSource; size: number }> {
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new AppError(ErrorCodes.invalidArgument, `${path} is not a regular file`);
    size = info.size;
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError(ErrorCodes.invalidArgument, `Cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  return { source: { name: path, chunks: stream }, size };
}

export function imageCommands(image: Command, cli: CliContext) {
  image
    .command('import')
    .description('Import a unified image (one tarball) or a split image (metadata tarball + rootfs, squashfs or qcow2)')
    .argument('<file>', 'unified tarball, or the metadata tarball of a split image')
    .argument('[rootfs]', 'rootfs tarball, squashfs or qcow2 disk of a split image')
    .option('--alias <name>', 'alias for the new image (repeatable)', collect, [])
    .option('--private', 'keep the image out of the public index')
    .option('--property <key=value>', 'set a property (repeatable)', collect, [])
    .option('--channel <name>', 'publish it in this channel instead of the default one (repeatable)', collect, [])
    .option('--no-delta', 'make no delta from the previous version of its product (made by default when xdelta3 is installed)')
    .action(async (file: string, rootfs: string | undefined, opts: { alias: string[]; private?: boolean; property: string[]; channel: string[]; delta: boolean }) => {
      const [{ importImage }, { progress }] = await Promise.all([import('../core/import.ts'), import('./progress.ts')]);
      const properties = keyValues(opts.property);
      const files = await Promise.all([file, ...(rootfs ? [rootfs] : [])].map(fileSource));
      const bar = progress(cli.io.stderr, 'Importing', files.reduce((n, f) => n + f.size, 0));
      const controller = new AbortController();
      const onSignal = () => controller.abort(new AppError(ErrorCodes.invalidArgument, 'Import interrupted'));
      process.once('SIGINT', onSignal);
      try {
        const imported = await withStore(cli, async (store) => {
          const image = await importImage(store, {
            sources: files.map((f) => f.source) as [IngestSource] | [IngestSource, IngestSource],
            aliases: opts.alias,
            public: !opts.private,
            ...(opts.channel.length ? { channels: opts.channel } : {}),
            properties,
            actor: cliActor(),
            onBytes: (n) => bar.add(n),
            signal: controller.signal,
          });
          if (opts.delta) await deltaFor(cli, store, image, image.channels);
          // A new version may push an older one past its channels' retention.
          await applyRetention(store, image.channels);
          return image;
        });
        bar.stop();
        cli.io.stdout.write(`Image imported with fingerprint: ${imported.fingerprint}\n`);
      } finally {
        bar.stop();
        process.off('SIGINT', onSignal);
        for (const f of files) (f.source.chunks as NodeJS.ReadableStream & { destroy(): void }).destroy();
      }
    });

  image
    .command('list')
    .alias('ls')
    .description('List images; FILTER is a fingerprint prefix, part of an alias, or KEY=VALUE')
    .argument('[filters...]')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (filters: string[], opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const images = await withStore(cli, (store) => listImages(store, filters));
      const columns = ['ALIAS', 'FINGERPRINT', 'PUBLIC', 'DESCRIPTION', 'ARCHITECTURE', 'TYPE', 'SIZE', 'UPLOAD DATE'];
      const rows = images.map((i) => [
        i.aliases.map((a) => a.name).join('\n'),
        i.fingerprint.slice(0, 12),
        i.public ? 'yes' : 'no',
        i.properties.description ?? '',
        i.architecture,
        i.type === 'virtual-machine' ? 'VIRTUAL-MACHINE' : 'CONTAINER',
        humanSize(i.size),
        humanDate(i.uploadedAt),
      ]);
      // The API view of each image is only for json and yaml; a table of 1,000 skips building it.
      const data = format === 'json' || format === 'yaml' ? images.map((i) => toApiImage(i, i.aliases)) : undefined;
      cli.io.stdout.write(await render(format, columns, rows, data));
    });

  const withAliases = async (ref: string) => withStore(cli, async (store) => imageWithAliases(store, await resolveImage(store, ref)));

  image
    .command('info')
    .description('Show an image')
    .argument('<image>', 'alias or fingerprint prefix')
    .action(async (ref: string) => {
      const i = await withAliases(ref);
      const downloads = await withUsage(cli, (usage) => imageDownloads(usage, i.fingerprint));
      const lines = [
        `Fingerprint: ${i.fingerprint}`,
        `Size: ${humanSize(i.size)}`,
        `Architecture: ${i.architecture}`,
        `Type: ${i.type}`,
        `Public: ${i.public ? 'yes' : 'no'}`,
        `Channels: ${i.channels.join(', ') || 'none'}`,
        ...(i.pinned.length ? [`Pinned in: ${i.pinned.join(', ')}`] : []),
        'Timestamps:',
        `    Created: ${humanDate(i.createdAt)}`,
        `    Uploaded: ${humanDate(i.uploadedAt)}`,
        `    Expires: ${humanDate(i.expiresAt)}`,
        `    Last used: ${humanDate(i.lastUsedAt)}`,
        'Properties:',
        ...Object.entries(i.properties)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => `    ${k}: ${v}`),
        'Aliases:',
        ...i.aliases.map((a) => `    - ${a.name}`),
        `Cached: ${i.cached ? 'yes' : 'no'}`,
        `Auto update: ${i.autoUpdate ? 'enabled' : 'disabled'}`,
        ...(i.stage ? [`Pipeline: ${i.stage.state}${i.stage.state === 'promoted' ? (i.stage.tested ? ' (tests passed)' : ' (not tested)') : ''} since ${humanDate(i.stage.at)}`] : []),
        `Downloads: ${downloads.total} (last 30 days: ${downloads.last30Days})`,
        ...(i.rootfs
          ? [`Files:`, `    metadata: ${i.metadata.sha256} (${humanSize(i.metadata.size)})`, `    rootfs: ${i.rootfs.sha256} (${humanSize(i.rootfs.size)})`]
          : []),
      ];
      cli.io.stdout.write(lines.join('\n') + '\n');
    });

  for (const move of ['promote', 'demote'] as const) {
    image
      .command(move)
      .description(move === 'promote' ? 'Publish an image in a channel too (its root: /CHANNEL/streams/v1/)' : 'Take an image out of a channel (its clients go back to the version before)')
      .argument('<image>', 'alias or fingerprint prefix')
      .requiredOption('--channel <name>', 'the channel (default is the root index)')
      .option('--no-delta', 'promote: make no delta from the previous version in the channel')
      .option('--force', 'promote: a staged image that has not passed its tests')
      .action(async (ref: string, opts: { channel: string; delta: boolean; force?: boolean }) => {
        const hooksConfigured = (await cliConfig(cli)).testHooks.length > 0;
        const moved = await withStore(cli, async (store) => {
          const staged = await resolveImage(store, ref);
          if (move === 'promote' && inStaging(staged)) {
            checkChannel(opts.channel);
            return promoteStaged(store, staged.fingerprint, [opts.channel], cliActor(), { hooksConfigured, force: opts.force ?? false, delta: opts.delta });
          }
          const image = await moveToChannel(store, ref, opts.channel, move, cliActor());
          if (move === 'promote') {
            if (opts.delta) await deltaFor(cli, store, image, [opts.channel]);
            // A promotion may push an older version past the channel's retention.
            await applyRetention(store, [opts.channel]);
          }
          return image;
        });
        cli.io.stdout.write(`Image ${moved.fingerprint.slice(0, 12)} is in ${moved.channels.length ? `channels ${moved.channels.join(', ')}` : 'no channel'}\n`);
      });
  }

  for (const pin of [true, false]) {
    image
      .command(pin ? 'pin' : 'unpin')
      .description(pin ? "Keep an image in a channel whatever the channel's retention says" : 'Let the channel\'s retention take the image again')
      .argument('<image>', 'alias or fingerprint prefix')
      .requiredOption('--channel <name>', 'the channel')
      .action(async (ref: string, opts: { channel: string }) => {
        const pinned = await withStore(cli, (store) => pinInChannel(store, ref, opts.channel, pin, cliActor()));
        cli.io.stdout.write(`Image ${pinned.fingerprint.slice(0, 12)} is pinned in ${pinned.pinned.length ? pinned.pinned.join(', ') : 'no channel'}\n`);
      });
  }

  image
    .command('reject')
    .description('Take a staged image out of the pipeline: out of staging, never promoted (kept until deleted)')
    .argument('<image>', 'alias or fingerprint prefix')
    .action(async (ref: string) => {
      const rejected = await withStore(cli, async (store) => rejectStaged(store, (await resolveImage(store, ref)).fingerprint, cliActor()));
      cli.io.stdout.write(`Image ${rejected.fingerprint.slice(0, 12)} is rejected\n`);
    });

  image
    .command('staged')
    .description('List the images in the publishing pipeline: staged, testing, passed, failed (--all: promoted and rejected too)')
    .option('--all', 'with the promoted and rejected ones')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { all?: boolean; format: string }) => {
      const format = checkFormat(opts.format);
      const images = await withStore(cli, async (store) => (await store.meta.listImages()).filter((i) => i.stage && (opts.all || inStaging(i))));
      const data = images.map((i) => ({ fingerprint: i.fingerprint, product: productKeyOf(i), version: serialOf(i), type: i.type, stage: i.stage!.state, since: i.stage!.at, channels: i.channels }));
      const rows = data.map((d) => [d.fingerprint.slice(0, 12), d.product, d.version, d.type, d.stage, humanDate(d.since)]);
      cli.io.stdout.write(await render(format, ['FINGERPRINT', 'PRODUCT', 'VERSION', 'TYPE', 'STAGE', 'SINCE'], rows, data));
    });

  image
    .command('history')
    .description("Show how an image's channels changed: when, by whom, from and to")
    .argument('<image>', 'alias or fingerprint prefix')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (ref: string, opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const { image, changes } = await withStore(cli, async (store) => {
        const found = await resolveImage(store, ref);
        return { image: found, changes: await store.meta.channelHistory(found.fingerprint) };
      });
      // The first line is the import, which put the image in its first channels.
      const first = changes[0]?.from ?? image.channels;
      const rows = [
        [humanDate(image.uploadedAt), '', '(imported)', first.join(', ') || 'none'],
        ...changes.map((c) => [humanDate(c.at), c.actor, c.from.join(', ') || 'none', c.to.join(', ') || 'none']),
      ];
      cli.io.stdout.write(await render(format, ['WHEN', 'WHO', 'FROM', 'TO'], rows, changes));
    });

  image
    .command('test')
    .description('Run the test hooks of config.yaml (test_hooks) on an image; every attempt is kept (image tests)')
    .argument('<image>', 'alias or fingerprint prefix')
    .action(async (ref: string) => {
      const config = await cliConfig(cli);
      if (!config.testHooks.length) {
        throw new AppError(ErrorCodes.invalidArgument, 'No test hooks are configured', { hint: 'Add test_hooks to config.yaml; `wharf test IMAGE` is the built-in launch test.' });
      }
      const [{ runTestHooks }, { testStaged }] = await Promise.all([import('../pipeline/hooks.ts'), import('../pipeline/stage.ts')]);
      const results = await withStore(cli, async (store) => {
        const image = await resolveImage(store, ref);
        if (!image.stage || !inStaging(image)) return runTestHooks(store, image, config.testHooks);
        // A staged image moves with its results: testing, then passed or failed.
        const staged = await testStaged(store, image, config.testHooks, true);
        if (!staged) throw new AppError(ErrorCodes.conflict, `Image ${image.fingerprint.slice(0, 12)} is being tested by another process`, { hint: `See its results with: wharf image tests ${ref}` });
        return staged;
      });
      for (const r of results) cli.io.stdout.write(`${r.hook}: ${r.outcome}${r.attempt > 1 ? ` (attempt ${r.attempt})` : ''}\n`);
      const failed = results.filter((r) => r.outcome !== 'passed');
      if (failed.length) throw new AppError(ErrorCodes.invalidImage, `The image failed ${failed.map((r) => r.hook).join(', ')}`, { hint: `See why with: wharf image tests ${ref} --log` });
    });

  image
    .command('tests')
    .description("Show an image's test results: every attempt of every hook")
    .argument('<image>', 'alias or fingerprint prefix')
    .option('--log', 'with what each attempt printed (its end)')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (ref: string, opts: { format: string; log?: boolean }) => {
      const format = checkFormat(opts.format);
      const results = await withStore(cli, async (store) => store.meta.testResults((await resolveImage(store, ref)).fingerprint));
      if (opts.log && format === 'table') {
        // What a hook printed may come from the image: its controls are shown, not obeyed.
        for (const r of results) {
          const log = r.log.split('\n').map(escapeTerminalControls).join('\n');
          cli.io.stdout.write(`== ${r.hook}, attempt ${r.attempt}: ${r.outcome} (${humanDate(r.startedAt)}, ${(r.durationMs / 1000).toFixed(1)} s)\n${log}${log.endsWith('\n') || !log ? '' : '\n'}`);
        }
        return;
      }
      const rows = results.map((r) => [r.hook, String(r.attempt), r.outcome, r.exitCode === null ? '-' : String(r.exitCode), humanDate(r.startedAt), `${(r.durationMs / 1000).toFixed(1)} s`]);
      const data = results.map(({ log, ...r }) => (opts.log ? { ...r, log } : r));
      cli.io.stdout.write(await render(format, ['HOOK', 'ATTEMPT', 'OUTCOME', 'EXIT', 'STARTED', 'TOOK'], rows, data));
    });

  image
    .command('show')
    .description('Show an image as YAML')
    .argument('<image>')
    .action(async (ref: string) => {
      const i = await withAliases(ref);
      const { stringify } = await import('yaml');
      cli.io.stdout.write(stringify(toApiImage(i, i.aliases)));
    });

  image
    .command('edit')
    .description('Edit properties, public, expires_at and auto_update as YAML (from $EDITOR, or stdin when it is not a terminal)')
    .argument('<image>')
    .action(async (ref: string) => {
      const { editedDocument } = await import('./image-edit.ts');
      const current = await withAliases(ref);
      const edited = await editedDocument(toApiImage(current, current.aliases), cli.io);
      // Refused if the image changed while the editor was open: the edit was made from the old one.
      await withStore(cli, (store) => applyImageEdit(store, current.fingerprint, edited, 'replace', unchangedSince(current)));
    });

  image
    .command('set-property')
    .description('Set an image property')
    .argument('<image>')
    .argument('<key>')
    .argument('<value>')
    .action(async (ref: string, key: string, value: string) => {
      await withStore(cli, (store) => setProperty(store, ref, key, value));
    });

  image
    .command('unset-property')
    .description('Remove an image property')
    .argument('<image>')
    .argument('<key>')
    .action(async (ref: string, key: string) => {
      await withStore(cli, (store) => setProperty(store, ref, key, undefined));
    });

  image
    .command('delete')
    .alias('rm')
    .description('Delete images (their files stay downloadable for the grace period)')
    .argument('<images...>')
    .action(async (refs: string[]) => {
      await withStore(cli, (store) => deleteImages(store, refs, cliActor()));
    });

  image
    .command('export')
    .description('Write an image\'s files to TARGET (a directory, default "."), named as lxc names them')
    .argument('<image>')
    .argument('[target]', 'directory', '.')
    .action(async (ref: string, target: string) => {
      const written = await withStore(cli, (store) => exportImage(store, ref, target));
      cli.io.stdout.write(`Image exported successfully!\n${written.map((w) => `  ${w}\n`).join('')}`);
    });

  image
    .command('verify')
    .description('Re-hash stored files and check every image against its fingerprint; or, with --published, check what a server serves as current clients do')
    .argument('[images...]')
    .option('--published <url>', 'download every file of the simplestreams index at URL (this server, a mirror, any tree) and check sizes, sha256, combined fingerprints and paths')
    .option('--certificate <file>', 'with --published: trust exactly this PEM certificate (default: the system CA store)')
    .option('--client <name...>', `with --published: the client views to check (${Object.keys(publishedClients).join(', ')}; default all)`)
    .action(async (refs: string[], opts: { published?: string; certificate?: string; client?: string[] }) => {
      if (opts.published === undefined) {
        if (opts.certificate !== undefined || opts.client !== undefined) throw new AppError(ErrorCodes.invalidArgument, '--certificate and --client go with --published');
        const results = await withStore(cli, (store) => verifyImages(store, refs));
        const bad = results.filter((r) => !r.ok);
        for (const r of results) {
          cli.io.stdout.write(r.ok ? `${r.fingerprint}: ok\n` : `${r.fingerprint}: CORRUPT\n${r.problems.map((p) => `  ${p}\n`).join('')}`);
        }
        if (bad.length) throw new AppError(ErrorCodes.integrity, `${bad.length} of ${results.length} images failed verification`);
        return;
      }
      if (refs.length) throw new AppError(ErrorCodes.invalidArgument, '--published checks the whole index: give no IMAGE');
      const certificate = opts.certificate === undefined ? undefined : await readFile(opts.certificate, 'utf8');
      const { verifyPublished } = await import('../remote/verify-published.ts');
      const report = await verifyPublished(opts.published, { certificate, ...(opts.client ? { clients: opts.client } : {}) });
      const views = Object.entries(report.images).map(([client, n]) => `${client} ${n}`).join(', ');
      cli.io.stdout.write(`${report.files} files, ${report.bytes} bytes checked; images offered: ${views}\n`);
      for (const p of report.problems) cli.io.stdout.write(`  ${p}\n`);
      if (report.problems.length) throw new AppError(ErrorCodes.upstreamCorrupt, `${report.problems.length} problems in what ${opts.published} serves`);
    });

  image
    .command('generate-metadata')
    .description('Write a metadata tarball for a hand-built rootfs')
    .requiredOption('--os <os>')
    .requiredOption('--release <release>')
    .requiredOption('--architecture <arch>')
    .option('--variant <variant>', 'variant', 'default')
    .option('--description <text>')
    .option('--creation-date <epoch>', 'Unix seconds (default: now)')
    .option('--output <file>', 'tarball to write; its extension picks the compression', 'metadata.tar.xz')
    .action(async (opts: { os: string; release: string; architecture: string; variant: string; description?: string; creationDate?: string; output: string }) => {
      if (opts.creationDate !== undefined && !/^\d+$/.test(opts.creationDate)) {
        throw new AppError(ErrorCodes.invalidArgument, `--creation-date must be Unix seconds, got "${opts.creationDate}"`);
      }
      const { generateMetadata } = await import('../core/generate-metadata.ts');
      const { path } = await generateMetadata({
        os: opts.os,
        release: opts.release,
        architecture: opts.architecture,
        variant: opts.variant,
        output: opts.output,
        ...(opts.description !== undefined ? { description: opts.description } : {}),
        ...(opts.creationDate !== undefined ? { creationDate: Number(opts.creationDate) } : {}),
      });
      cli.io.stdout.write(`Metadata written to ${path}\n`);
    });

  const alias = image.command('alias').description('Manage image aliases');
  alias
    .command('create')
    .argument('<name>')
    .argument('<image>')
    .option('--description <text>', 'description', '')
    .action(async (name: string, ref: string, opts: { description: string }) => {
      await withStore(cli, (store) => createAlias(store, name, ref, opts.description));
    });
  alias
    .command('delete')
    .alias('rm')
    .argument('<name>')
    .action(async (name: string) => {
      await withStore(cli, (store) => deleteAlias(store, name));
    });
  alias
    .command('rename')
    .alias('mv')
    .argument('<old>')
    .argument('<new>')
    .action(async (from: string, to: string) => {
      await withStore(cli, (store) => renameAlias(store, from, to));
    });
  alias
    .command('list')
    .alias('ls')
    .argument('[filters...]')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (filters: string[], opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const aliases = await withStore(cli, (store) => listAliases(store, filters));
      const rows = aliases.map((a) => [a.name, a.fingerprint.slice(0, 12), a.type.toUpperCase(), a.description]);
      const data = aliases.map((a) => ({ name: a.name, target: a.fingerprint, type: a.type, description: a.description }));
      cli.io.stdout.write(await render(format, ['ALIAS', 'FINGERPRINT', 'TYPE', 'DESCRIPTION'], rows, data));
    });

  image
    .command('refresh')
    .description('Check images copied with --auto-update for a newer version now')
    .argument('[images...]')
    .action(async (refs: string[]) => {
      const { refreshImages } = await import('../mirror/refresh.ts');
      const results = await withStore(cli, (store) => refreshImages(store, refs));
      for (const r of results) {
        cli.io.stdout.write(r.error ? `${r.fingerprint}: ${r.error}\n` : r.updatedTo ? `${r.fingerprint}: updated to ${r.updatedTo}\n` : `${r.fingerprint}: up to date\n`);
      }
      if (results.some((r) => r.error)) throw new AppError(ErrorCodes.unavailable, 'Some images could not be refreshed');
    });

  image
    .command('copy')
    .description('Copy an image from a remote into the store: every file is checked against its sha256')
    .argument('<source>', 'REMOTE:IMAGE (alias or fingerprint)')
    .option('--alias <name>', 'alias for the copy (repeatable)', collect, [])
    .option('--copy-aliases', 'also take the aliases the image has on the remote')
    .option('--auto-update', 'follow the alias: refresh to newer versions')
    .option('--vm', 'the virtual-machine image of that alias')
    .option('--private', 'keep the copy out of the public index')
    .action(async (ref: string, opts: { alias: string[]; copyAliases?: boolean; autoUpdate?: boolean; vm?: boolean; private?: boolean }) => {
      const [{ copyFromRemote }, { progress }] = await Promise.all([import('../mirror/copy.ts'), import('./progress.ts')]);
      const copied = await withStore(cli, async (store) => {
        let bar: ReturnType<typeof progress> | undefined;
        try {
          return await copyFromRemote(store, ref, {
            type: opts.vm ? 'virtual-machine' : 'container',
            aliases: opts.alias,
            copyAliases: opts.copyAliases ?? false,
            autoUpdate: opts.autoUpdate ?? false,
            public: !opts.private,
            onStart: (total) => (bar = progress(cli.io.stderr, 'Copying', total)),
            onBytes: (n) => bar?.add(n),
          });
        } finally {
          bar?.stop();
        }
      });
      cli.io.stdout.write(`Image copied successfully! Fingerprint: ${copied.fingerprint}\n`);
    });
}

/**
 * The delta a version gets on entering channels (core/deltas.ts), said on stderr: its failure
 * fails nothing else (the version is in, clients then download it whole).
 */
async function deltaFor(cli: CliContext, store: Store, image: Image, channels: string[]): Promise<void> {
  const { deltaOnEntering } = await import('../core/deltas.ts');
  for (const channel of channels) {
    try {
      const { made } = await deltaOnEntering(store, image, channel);
      if (made) {
        cli.io.stderr.write(`Delta from version ${made.base}: ${humanSize(made.size)}\n`);
        return;
      }
    } catch (err) {
      cli.io.stderr.write(`No delta for ${image.fingerprint.slice(0, 12)}: ${(err as Error).message}\n`);
      return;
    }
  }
}
