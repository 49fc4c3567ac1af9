/** `wharf oci ...`: the OCI registry at /v2/ (issue 27): who may push to it. */
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { parseDuration } from '../domain/duration.ts';
import { addPushToken } from '../core/push-tokens.ts';
import { collect } from './output.ts';
import { readText, withStore, type CliContext } from './context.ts';
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
