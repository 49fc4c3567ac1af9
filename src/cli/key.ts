/** `wharf key ...`: the OpenPGP key that signs the published indexes. */
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { generateSigningKey } from '../signing/openpgp.ts';
import { loadSigner, saveSigningKey, signingKeyFile } from '../signing/key-file.ts';
import { cliConfig, readText, type CliContext } from './context.ts';

export function keyCommands(key: Command, cli: CliContext) {
  key
    .command('generate')
    .description('Create a signing key (ed25519): from then on the server publishes signed indexes')
    .option('--name <name>', 'the name in the key', 'wharf image server')
    .option('--email <email>', 'an address in the key')
    .option('--force', 'replace the current key')
    .action(async (opts: { name: string; email?: string; force?: boolean }) => {
      const { dataDir } = await cliConfig(cli);
      const signer = await saveSigningKey(dataDir, await generateSigningKey({ name: opts.name, email: opts.email }), opts.force ?? false);
      cli.io.stdout.write(`Signing key ${signer.fingerprint} written to ${signingKeyFile(dataDir)}\nGive clients its public half: wharf key export\n`);
    });

  key
    .command('import')
    .description('Use an existing OpenPGP private key (armored, without a passphrase) to sign the indexes')
    .argument('<file>')
    .option('--force', 'replace the current key')
    .action(async (file: string, opts: { force?: boolean }) => {
      const { dataDir } = await cliConfig(cli);
      const signer = await saveSigningKey(dataDir, await readText(file), opts.force ?? false);
      cli.io.stdout.write(`Signing key ${signer.fingerprint} imported\n`);
    });

  key
    .command('export')
    .description('Print the public key that verifies the indexes (for gpg --import, or remote add --gpg-key)')
    .action(async () => {
      const { dataDir, signingKey } = await cliConfig(cli);
      const signer = await loadSigner(dataDir, signingKey);
      if (!signer) throw new AppError(ErrorCodes.notFound, 'This server has no signing key', { hint: 'Create one with wharf key generate.' });
      cli.io.stdout.write(signer.publicKey);
    });
}
