/** `wharf image ...`: the store's CLI, shaped like `lxc image`. */
import { createReadStream } from 'node:fs';
import { stat, readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { parse, stringify } from 'yaml';
import { AppError, ErrorCodes } from '../errors.ts';
import { importImage } from '../core/import.ts';
import { deleteImages, editImage, exportImage, listImages, setProperty, verifyImages, type ImageWithAliases } from '../core/images.ts';
import { resolveImage } from '../core/resolve.ts';
import { createAlias, deleteAlias, renameAlias } from '../core/aliases.ts';
import { generateMetadata } from '../core/generate-metadata.ts';
import { toApiImage } from '../domain/lxd-api.ts';
import type { IngestSource } from '../core/ingest.ts';
import { checkFormat, humanDate, humanSize, render, collect } from './output.ts';
import { progress } from './progress.ts';
import { withStore, type GlobalOptions } from './context.ts';


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

export function imageCommands(program: Command, globals: () => GlobalOptions): Command {
  const image = program.command('image').description('Manage the images in the store');

  image
    .command('import')
    .description('Import a unified image (one tarball) or a split image (metadata tarball + rootfs, squashfs or qcow2)')
    .argument('<file>', 'unified tarball, or the metadata tarball of a split image')
    .argument('[rootfs]', 'rootfs tarball, squashfs or qcow2 disk of a split image')
    .option('--alias <name>', 'alias for the new image (repeatable)', collect, [])
    .option('--private', 'keep the image out of the public index')
    .option('--property <key=value>', 'set a property (repeatable)', collect, [])
    .action(async (file: string, rootfs: string | undefined, opts: { alias: string[]; private?: boolean; property: string[] }) => {
      const properties = keyValues(opts.property);
      const files = await Promise.all([file, ...(rootfs ? [rootfs] : [])].map(fileSource));
      const bar = progress('Importing', files.reduce((n, f) => n + f.size, 0));
      const controller = new AbortController();
      const onSignal = () => controller.abort(new AppError(ErrorCodes.invalidArgument, 'Import interrupted'));
      process.once('SIGINT', onSignal);
      try {
        const imported = await withStore(globals(), (store) =>
          importImage(store, {
            sources: files.map((f) => f.source) as [IngestSource] | [IngestSource, IngestSource],
            aliases: opts.alias,
            public: !opts.private,
            properties,
            onBytes: (n) => bar.add(n),
            signal: controller.signal,
          }),
        );
        bar.stop();
        process.stdout.write(`Image imported with fingerprint: ${imported.fingerprint}\n`);
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
      const images = await withStore(globals(), (store) => listImages(store, filters));
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
      process.stdout.write(render(format, columns, rows, images.map((i) => toApiImage(i, i.aliases))));
    });

  const withAliases = async (ref: string) =>
    withStore(globals(), async (store) => {
      const found = await resolveImage(store, ref);
      const aliases = await store.meta.listAliases();
      return { ...found, aliases: aliases.filter((a) => a.fingerprint === found.fingerprint) } as ImageWithAliases;
    });

  image
    .command('info')
    .description('Show an image')
    .argument('<image>', 'alias or fingerprint prefix')
    .action(async (ref: string) => {
      const i = await withAliases(ref);
      const lines = [
        `Fingerprint: ${i.fingerprint}`,
        `Size: ${humanSize(i.size)}`,
        `Architecture: ${i.architecture}`,
        `Type: ${i.type}`,
        `Public: ${i.public ? 'yes' : 'no'}`,
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
        ...(i.rootfs
          ? [`Files:`, `    metadata: ${i.metadata.sha256} (${humanSize(i.metadata.size)})`, `    rootfs: ${i.rootfs.sha256} (${humanSize(i.rootfs.size)})`]
          : []),
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });

  image
    .command('show')
    .description('Show an image as YAML')
    .argument('<image>')
    .action(async (ref: string) => {
      const i = await withAliases(ref);
      process.stdout.write(stringify(toApiImage(i, i.aliases)));
    });

  image
    .command('edit')
    .description('Edit properties, public and expires_at as YAML (from $EDITOR, or stdin when it is not a terminal)')
    .argument('<image>')
    .action(async (ref: string) => {
      const current = await withAliases(ref);
      const shown = toApiImage(current, current.aliases);
      const text = process.stdin.isTTY ? await editInEditor(stringify(shown)) : await readStdin();
      const edited = parseEdit(text, shown);
      await withStore(globals(), (store) => editImage(store, current.fingerprint, edited));
    });

  image
    .command('set-property')
    .description('Set an image property')
    .argument('<image>')
    .argument('<key>')
    .argument('<value>')
    .action(async (ref: string, key: string, value: string) => {
      await withStore(globals(), (store) => setProperty(store, ref, key, value));
    });

  image
    .command('unset-property')
    .description('Remove an image property')
    .argument('<image>')
    .argument('<key>')
    .action(async (ref: string, key: string) => {
      await withStore(globals(), (store) => setProperty(store, ref, key, undefined));
    });

  image
    .command('delete')
    .alias('rm')
    .description('Delete images (their files stay downloadable for the grace period)')
    .argument('<images...>')
    .action(async (refs: string[]) => {
      await withStore(globals(), (store) => deleteImages(store, refs));
    });

  image
    .command('export')
    .description('Write an image\'s files to TARGET (a directory, default "."), named as lxc names them')
    .argument('<image>')
    .argument('[target]', 'directory', '.')
    .action(async (ref: string, target: string) => {
      const written = await withStore(globals(), (store) => exportImage(store, ref, target));
      process.stdout.write(`Image exported successfully!\n${written.map((w) => `  ${w}\n`).join('')}`);
    });

  image
    .command('verify')
    .description('Re-hash stored files and check every image against its fingerprint')
    .argument('[images...]')
    .action(async (refs: string[]) => {
      const results = await withStore(globals(), (store) => verifyImages(store, refs));
      const bad = results.filter((r) => !r.ok);
      for (const r of results) {
        process.stdout.write(r.ok ? `${r.fingerprint}: ok\n` : `${r.fingerprint}: CORRUPT\n${r.problems.map((p) => `  ${p}\n`).join('')}`);
      }
      if (bad.length) throw new AppError(ErrorCodes.integrity, `${bad.length} of ${results.length} images failed verification`);
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
      const { path } = await generateMetadata({
        os: opts.os,
        release: opts.release,
        architecture: opts.architecture,
        variant: opts.variant,
        output: opts.output,
        ...(opts.description !== undefined ? { description: opts.description } : {}),
        ...(opts.creationDate !== undefined ? { creationDate: Number(opts.creationDate) } : {}),
      });
      process.stdout.write(`Metadata written to ${path}\n`);
    });

  const alias = image.command('alias').description('Manage image aliases');
  alias
    .command('create')
    .argument('<name>')
    .argument('<image>')
    .option('--description <text>', 'description', '')
    .action(async (name: string, ref: string, opts: { description: string }) => {
      await withStore(globals(), (store) => createAlias(store, name, ref, opts.description));
    });
  alias
    .command('delete')
    .alias('rm')
    .argument('<name>')
    .action(async (name: string) => {
      await withStore(globals(), (store) => deleteAlias(store, name));
    });
  alias
    .command('rename')
    .alias('mv')
    .argument('<old>')
    .argument('<new>')
    .action(async (from: string, to: string) => {
      await withStore(globals(), (store) => renameAlias(store, from, to));
    });
  alias
    .command('list')
    .alias('ls')
    .argument('[filters...]')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (filters: string[], opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const aliases = (await withStore(globals(), (store) => store.meta.listAliases())).filter((a) =>
        filters.every((f) => a.name.includes(f) || a.fingerprint.startsWith(f)),
      );
      const rows = aliases.map((a) => [a.name, a.fingerprint.slice(0, 12), a.type.toUpperCase(), a.description]);
      const data = aliases.map((a) => ({ name: a.name, target: a.fingerprint, type: a.type, description: a.description }));
      process.stdout.write(render(format, ['ALIAS', 'FINGERPRINT', 'TYPE', 'DESCRIPTION'], rows, data));
    });
  return image;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function editInEditor(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-edit-'));
  const file = join(dir, 'image.yaml');
  try {
    await writeFile(file, text);
    const editor = process.env.VISUAL || process.env.EDITOR || 'vi';
    const result = spawnSync('sh', ['-c', `${editor} "$1"`, 'editor', file], { stdio: 'inherit' });
    if (result.status !== 0) throw new AppError(ErrorCodes.invalidArgument, `The editor exited with status ${result.status}; nothing changed`);
    return await readFile(file, 'utf8');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const readOnly = ['fingerprint', 'architecture', 'created_at', 'type', 'size', 'filename', 'uploaded_at'] as const;

/** Checks an edited YAML against what was shown: only the editable fields may differ. */
export function parseEdit(text: string, shown: ReturnType<typeof toApiImage>) {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) ?? {};
  } catch (err) {
    throw new AppError(ErrorCodes.invalidArgument, `Invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new AppError(ErrorCodes.invalidArgument, 'The image must be a YAML mapping');
  for (const key of readOnly) {
    if (key in doc && String(doc[key]) !== String(shown[key])) {
      throw new AppError(ErrorCodes.invalidArgument, `${key} cannot be changed`, { hint: 'Editable: properties, public, expires_at, auto_update.' });
    }
  }
  const edit: { properties?: Record<string, string>; public?: boolean; expiresAt?: string | null; autoUpdate?: boolean } = {};
  if ('properties' in doc) {
    const props = doc.properties ?? {};
    if (typeof props !== 'object' || Array.isArray(props)) throw new AppError(ErrorCodes.invalidArgument, 'properties must be a mapping');
    edit.properties = Object.fromEntries(Object.entries(props as object).map(([k, v]) => [k, String(v)]));
  }
  if ('public' in doc) {
    if (typeof doc.public !== 'boolean') throw new AppError(ErrorCodes.invalidArgument, 'public must be true or false');
    edit.public = doc.public;
  }
  if ('auto_update' in doc) {
    if (typeof doc.auto_update !== 'boolean') throw new AppError(ErrorCodes.invalidArgument, 'auto_update must be true or false');
    edit.autoUpdate = doc.auto_update;
  }
  if ('expires_at' in doc) {
    const raw = doc.expires_at instanceof Date ? doc.expires_at.toISOString() : String(doc.expires_at ?? '');
    if (!raw || raw.startsWith('0001-01-01')) edit.expiresAt = null;
    else if (Number.isNaN(Date.parse(raw))) throw new AppError(ErrorCodes.invalidArgument, `expires_at: "${raw}" is not a date`);
    else edit.expiresAt = new Date(raw).toISOString();
  }
  return edit;
}
