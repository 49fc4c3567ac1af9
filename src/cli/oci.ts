/** `wharf oci ...`: the OCI registry at /v2/ (issue 27): who may push to it. */
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { parseDuration } from '../domain/duration.ts';
import { addPushToken } from '../core/push-tokens.ts';
import { collect } from './output.ts';
import { cliConfig, readText, withStore, type CliContext } from './context.ts';
import { addRemote, getRemote, removeRemote } from '../mirror/remotes.ts';

export function ociCommands(oci: Command, cli: CliContext) {
  const remote = oci.command('remote').description('Registries the registry caches: /v2/NAME/REPOSITORY pulls through to URL/v2/REPOSITORY');
  remote
    .command('add')
    .description('Cache another registry under /v2/NAME/ (every blob and manifest checked against its digest before it is kept)')
    .argument('<name>', 'the path prefix clients use, such as hub')
    .argument('<url>', 'the registry, such as https://registry-1.docker.io')
    .option('--certificate <pemfile>', 'pin this registry\'s certificate instead of trusting the system CA store')
    .action(async (name: string, url: string, opts: { certificate?: string }) => {
      const certificate = opts.certificate ? await readText(opts.certificate) : undefined;
      await withStore(cli, (store) => addRemote(store, { name, url, protocol: 'oci', certificate }));
      cli.io.stderr.write(`Pull through it with: skopeo inspect docker://HOST:8443/${name}/REPOSITORY (incus remote add ${name} https://HOST:8443/${name} --protocol=oci)\n`);
    });
  remote
    .command('remove')
    .description('Stop caching a registry (what was cached stays until deleted)')
    .argument('<name>')
    .action(async (name: string) => {
      await withStore(cli, async (store) => {
        if ((await getRemote(store, name)).protocol !== 'oci') throw new AppError(ErrorCodes.invalidArgument, `Remote "${name}" is not a registry: see wharf remote remove`);
        await removeRemote(store, name);
      });
    });

  oci
    .command('export')
    .description('Write images of the registry into an OCI image layout directory (for an air-gapped site): every platform, each blob once')
    .argument('<dir>')
    .argument('<images...>', 'REPOSITORY[:TAG] (latest by default)')
    .action(async (dir: string, images: string[]) => {
      const { exportLayout } = await import('../mirror/oci-layout.ts');
      const done = await withStore(cli, (store) => exportLayout(store, dir, images));
      cli.io.stdout.write(`Exported ${done.images} images: ${done.blobs} blobs, ${done.bytes} bytes\n`);
    });
  oci
    .command('import')
    .description('Push the images of an OCI image layout directory into the registry, every blob checked against its digest')
    .argument('<dir>')
    .option('--repository <name>', 'for a layout that does not name its images\' repository (skopeo\'s oci:DIR:TAG)')
    .action(async (dir: string, opts: { repository?: string }) => {
      const { importLayout } = await import('../mirror/oci-layout.ts');
      const done = await withStore(cli, (store) => importLayout(store, dir, opts.repository ? { repository: opts.repository } : {}));
      cli.io.stdout.write(`Imported ${done.images.join(', ') || 'nothing'}\n`);
    });

  const mirror = oci.command('mirror').description('Tags of other registries copied whole ahead of time, on the schedule of image mirrors');
  mirror
    .command('add')
    .description('Copy tags of a repository of an OCI remote (all platforms, or --arch ones) into REMOTE/REPOSITORY')
    .argument('<name>')
    .argument('<remote>', 'an OCI remote (wharf oci remote add)')
    .argument('<repository>', 'its name upstream, such as library/alpine')
    .requiredOption('--tag <tag>', 'a tag to copy (repeatable)', collect, [])
    .option('--arch <architecture>', 'only these platforms of an index, such as amd64 (repeatable)', collect, [])
    .option('--interval <duration>', 'how often it syncs (0: only by hand)', '6h')
    .action(async (name: string, remote: string, repository: string, opts: { tag: string[]; arch: string[]; interval: string }) => {
      const { addOciMirror } = await import('../mirror/oci-mirror.ts');
      await withStore(cli, (store) => addOciMirror(store, { name, remote, repository, tags: opts.tag, architectures: opts.arch, intervalSeconds: parseDuration(opts.interval) }));
    });
  mirror
    .command('sync')
    .description('Sync registry mirrors now')
    .argument('[name]', 'one mirror (default: all)')
    .action(async (name: string | undefined) => {
      const { syncOciMirror } = await import('../mirror/oci-mirror.ts');
      const { registryCredentials } = await cliConfig(cli);
      const failed = await withStore(cli, async (store) => {
        const registries = new Set((await store.meta.listRemotes()).filter((r) => r.protocol === 'oci').map((r) => r.name));
        const mirrors = (await store.meta.listMirrors()).filter((m) => registries.has(m.remote) && (!name || m.name === name));
        if (name && !mirrors.length) throw new AppError(ErrorCodes.notFound, `No registry mirror "${name}"`);
        let failures = 0;
        for (const m of mirrors) {
          const report = await syncOciMirror(store, m, registryCredentials);
          cli.io.stdout.write(`${m.name}: ${report.tags.length} tags, ${report.blobs} blobs${report.failed.map((f) => `\n  ! ${f.tag}: ${f.error}`).join('')}\n`);
          failures += report.failed.length;
        }
        return failures;
      });
      if (failed) throw new AppError(ErrorCodes.unavailable, `${failed} tags could not be mirrored; the next sync tries again`);
    });

  const user = oci.command('user').description("The registry's users: who may push, and where (listed and revoked with `wharf token list|revoke`)");
  user
    .command('add')
    .description('Make a registry user (the password is shown once): it pushes to, and deletes from, the repositories its globs match')
    .argument('<name>', 'the user name clients log in with')
    .requiredOption('--push <glob>', 'repositories it may push to, such as myorg/* (repeatable)', collect, [])
    .option('--expires <duration>', 'how long it works, such as 90d (default: until revoked)')
    .action(async (name: string, opts: { push: string[]; expires?: string }) => {
      if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/.test(name)) throw new AppError(ErrorCodes.invalidArgument, `"${name.slice(0, 80)}" is not a user name (letters, digits, ".", "_", "-")`);
      const expiresInSeconds = opts.expires === undefined ? undefined : parseDuration(opts.expires);
      const { record, token } = await withStore(cli, (store) => addPushToken(store, name, { globs: opts.push, expiresInSeconds }));
      cli.io.stdout.write(`${token}\n`);
      cli.io.stderr.write(
        `User ${name} (token ${record.id}) pushes to ${record.globs.join(', ')}${record.expiresAt ? ` until ${record.expiresAt}` : ''}. Log in with:\n` +
          `  podman login HOST:8443 -u ${name} -p PASSWORD          (or skopeo --creds ${name}:PASSWORD)\n`,
      );
    });
}
