/** `wharf trust ...`: which client certificates the LXD API trusts. */
import { networkInterfaces } from 'node:os';
import type { Command } from 'commander';
import { AppError, ErrorCodes } from '../errors.ts';
import { parseAddress } from '../config.ts';
import { createJoinToken, parseCertificate, trustCertificate, untrustCertificate } from '../core/trust.ts';
import { tokenFingerprint } from '../tls.ts';
import { checkFormat, render, collect } from './output.ts';
import { cliConfig, readText, withStore, type CliContext } from './context.ts';

/** Where clients can reach this server: the configured address, or every non-loopback one. */
export function serverAddresses(https: string): string[] {
  const { host, port } = parseAddress(https)!;
  if (host !== '::' && host !== '0.0.0.0') return [host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`];
  return Object.values(networkInterfaces())
    .flat()
    .filter((i) => i && !i.internal)
    .map((i) => (i!.family === 'IPv6' ? `[${i!.address}]:${port}` : `${i!.address}:${port}`));
}

export function trustCommands(trust: Command, cli: CliContext) {
  trust
    .command('add')
    .description('Trust a client certificate (PEM), e.g. ~/.config/lxc/client.crt')
    .argument('<certfile>')
    .option('--name <name>', 'a name for it (default: its common name)')
    .option('--channel <name>', 'restrict it to reading the private images of this channel (repeatable); it may change nothing', collect, [])
    .action(async (file: string, opts: { name?: string; channel: string[] }) => {
      const pem = await readText(file);
      const entry = await withStore(cli, (store) => trustCertificate(store, parseCertificate(pem), opts.name, opts.channel));
      cli.io.stdout.write(`Trusted ${entry.name} (${entry.fingerprint})${entry.channels ? `, to read the channels ${entry.channels.join(', ')}` : ''}\n`);
    });

  trust
    .command('list')
    .alias('ls')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const certs = await withStore(cli, (store) => store.meta.listCertificates());
      const rows = certs.map((c) => [c.name, c.fingerprint.slice(0, 12), c.channels ? c.channels.join(',') : 'all', c.createdAt]);
      const data = certs.map((c) => ({ name: c.name, fingerprint: c.fingerprint, channels: c.channels, created_at: c.createdAt, certificate: c.certificate }));
      cli.io.stdout.write(await render(format, ['NAME', 'FINGERPRINT', 'CHANNELS', 'ADDED'], rows, data));
    });

  trust
    .command('remove')
    .alias('rm')
    .argument('<fingerprint>', 'full fingerprint or a unique prefix')
    .action(async (prefix: string) => {
      await withStore(cli, (store) => untrustCertificate(store, prefix));
    });

  trust
    .command('add-token')
    .description('Print a one-time token for `lxc remote add NAME TOKEN`')
    .argument('<name>', 'name of the client that will use it')
    .option('--address <host:port>', 'address clients reach the server at (repeatable; default: the configured https address)', collect, [])
    .option('--expiry <seconds>', 'how long the token is valid', '86400')
    .option('--tls-cert <file>', 'certificate the clients will see (default: the one the server last started with)')
    .action(async (name: string, opts: { address: string[]; expiry: string; tlsCert?: string }) => {
      const config = await cliConfig(cli);
      const ttlSeconds = Number(opts.expiry);
      for (const a of opts.address) if (!parseAddress(a)) throw new AppError(ErrorCodes.invalidArgument, `Bad address "${a}"; use HOST:PORT`);
      const serverFingerprint = await tokenFingerprint({ dataDir: config.dataDir, certPath: opts.tlsCert, configuredCert: config.tlsCert, configuredKey: config.tlsKey });
      const addresses = opts.address.length ? opts.address : serverAddresses(config.https);
      const token = await withStore(cli, (store) => createJoinToken(store, { name, serverFingerprint, addresses, ttlSeconds }));
      cli.io.stdout.write(`${token}\n`);
    });
}
