/**
 * argv -> command. Errors become a message, a hint and the exit status the error catalogue
 * (src/errors.ts) gives their code; stacks only with --debug.
 *
 * This is the one place that registers commands. Start-up time is most of what a short command
 * costs, and most of start-up is loading modules, so each command group's module (its
 * subcommands, and what they import: fastify for `serve`, the mirror code for `mirror`...) is
 * loaded only when that group is the one run. `wharf --help` lists the groups from the names
 * and summaries below without loading any of them.
 */
import { Command, CommanderError, Help } from 'commander';
import { errorCatalogue, errorEntry, isAppError } from '../errors.ts';
import { redactSecrets } from '../domain/redact.ts';
import type { CliContext, GlobalOptions } from './context.ts';
import { processIo, type CliIo } from './io.ts';

/** Adds a group's options, subcommands and actions to its (already named) command. */
type Define = (command: Command, cli: CliContext) => void;

/**
 * `term` is how the overview shows a command that has options of its own (commander would show
 * `[options]` itself, but the overview is printed without loading the command's module).
 */
const groups: { name: string; term?: string; summary: string; load: () => Promise<Define> }[] = [
  { name: 'image', summary: 'Manage the images in the store', load: async () => (await import('./image.ts')).imageCommands },
  { name: 'serve', term: 'serve [options]', summary: 'Serve the store over simplestreams (and plain HTTP for artifacts)', load: async () => (await import('./serve.ts')).serveCommand },
  { name: 'channel', summary: 'The channels: several simplestreams roots from one store, and their retention', load: async () => (await import('./channel.ts')).channelCommands },
  { name: 'view', summary: 'Private views: a channel and filters, private images included, open to the holders of a token', load: async () => (await import('./view.ts')).viewCommands },
  { name: 'token', summary: "Builders' push tokens: uploads into the staging channel with Authorization: Bearer", load: async () => (await import('./token.ts')).tokenCommands },
  { name: 'oci', summary: 'The OCI registry at /v2/: its users and the registries it caches', load: async () => (await import('./oci.ts')).ociCommands },
  { name: 'webhook', summary: "The pipeline's webhooks (config.yaml): their state and delivery log", load: async () => (await import('./webhook.ts')).webhookCommands },
  { name: 'trust', summary: 'Manage the client certificates trusted over the LXD API', load: async () => (await import('./trust.ts')).trustCommands },
  { name: 'remote', summary: 'Manage the image servers wharf copies and mirrors from', load: async () => (await import('./remote.ts')).remoteCommands },
  { name: 'mirror', summary: 'Keep filtered, verified copies of other image servers', load: async () => (await import('./mirror.ts')).mirrorCommands },
  { name: 'site', summary: 'The mirrors this origin steers downloads to (GeoIP)', load: async () => (await import('./site.ts')).siteCommands },
  { name: 'key', summary: 'The OpenPGP key that signs the published indexes', load: async () => (await import('./key.ts')).keyCommands },
  { name: 'cache', summary: "Look after a mirror's cache (serve --mirror-of)", load: async () => (await import('./cache.ts')).cacheCommands },
  { name: 'tree', summary: 'Static simplestreams trees, for air-gapped copies', load: async () => (await import('./mirror.ts')).treeCommands },
  {
    name: 'stats',
    term: 'stats [options]',
    summary: 'Image downloads by product, image or day (usage statistics)',
    load: async () => (await import('./stats.ts')).statsCommand,
  },
  {
    name: 'test',
    term: 'test [options] <image>',
    summary: 'Launch an image in this host\'s Incus or LXD, unprivileged and privileged: it must start, run a command and stop',
    load: async () => (await import('./test.ts')).testCommand,
  },
  { name: 'db', summary: 'The PostgreSQL database of replicas: migrate an embedded store into it', load: async () => (await import('./db.ts')).dbCommands },
  {
    name: 'backup',
    term: 'backup <dir>',
    summary: 'A consistent copy of the databases, keys and settings, and the list of blobs (while serving too)',
    load: async () => (await import('./backup.ts')).backupCommand,
  },
  {
    name: 'prune',
    term: 'prune [options]',
    summary: 'Remove old product versions and files nothing uses (never within the grace period)',
    load: async () => (await import('./mirror.ts')).pruneCommand,
  },
];

function withGlobalOptions(command: Command): Command {
  return command
    .option('--data-dir <dir>', 'data directory (env WHARF_DATA_DIR, default ./wharf-data)')
    .option('--database <url>', 'postgres://... : the catalogue in PostgreSQL, shared by replicas (env WHARF_DATABASE)')
    .option('--blob-store <where>', 'where the blobs are: s3://BUCKET[/PREFIX] or a directory (env WHARF_BLOB_STORE, default DATA/blobs)')
    .option('--s3-path-style', 'S3: buckets in the path, not the host name (MinIO, Swift, Garage...)')
    .option('--debug', 'verbose logs and stack traces');
}

/**
 * The group the command line runs (`wharf [options] GROUP ...` or `wharf help GROUP`), found by
 * a first pass over the global options only; commander parses everything again afterwards.
 */
function groupNamed(args: string[]): string | undefined {
  const firstPass = withGlobalOptions(new Command())
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} });
  try {
    const { operands } = firstPass.parseOptions(args);
    return operands[0] === 'help' ? operands[1] : operands[0];
  } catch {
    return undefined; // a malformed global option: the real parse reports it
  }
}

/**
 * Runs one command line (`argv` as process.argv has it: node, script, then the arguments) with
 * `io` (default: the process's streams and environment) and answers its exit status.
 */
export async function runCli(argv: string[], io: CliIo = processIo()): Promise<number> {
  const program: Command = withGlobalOptions(new Command('wharf'))
    .description('A self-hostable image server for LXD and Incus')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (text) => io.stdout.write(text), writeErr: (text) => io.stderr.write(text) })
    .configureHelp({
      subcommandTerm(this: Help, command: Command): string {
        const term: string | undefined = command.parent === program ? groups.find((g) => g.name === command.name())?.term : undefined;
        return term ?? Help.prototype.subcommandTerm.call(this, command);
      },
    });
  const globals = () => program.opts<GlobalOptions>();

  try {
    const wanted = groupNamed(argv.slice(2));
    // Completion (@bomb.sh/tab) needs the whole tree: `completion SHELL` prints the script, which
    // asks `wharf complete -- WORDS...` for the candidates at each Tab.
    const completing = wanted === 'completion' || wanted === 'complete';
    for (const group of groups) {
      const command = program.command(group.name).description(group.summary);
      if (group.name === wanted || completing) (await group.load())(command, { globals, io });
    }
    if (completing) (await import('@bomb.sh/tab/commander')).default(program, { completionCommandName: 'completion' });
    else program.command('completion <shell>').description('Print the shell completion script (bash, zsh or fish)');
    program.commands.forEach(function override(c: Command) {
      c.exitOverride();
      c.commands.forEach(override);
    });
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    // Commander has printed a usage error (or the help, or the version: 0) itself.
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : errorCatalogue.invalid_argument.exit;
    // Errors of unattended runs (a timer's `mirror sync`) end up in logs: no URL credentials.
    io.stderr.write(`Error: ${redactSecrets((err as Error).message)}\n`);
    if (isAppError(err) && err.hint) io.stderr.write(`${redactSecrets(err.hint)}\n`);
    if (globals().debug && err instanceof Error) io.stderr.write(`${redactSecrets(err.stack ?? '')}\n`);
    return errorEntry(err).exit;
  }
}
