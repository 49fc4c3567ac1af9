/** `wharf serve`: runs the server until SIGINT/SIGTERM. */
import type { Command } from 'commander';
import { createLogger } from '../log.ts';
import { startServer } from '../server.ts';
import { cliConfig, type CliContext } from './context.ts';
import { collect } from './output.ts';

export function serveCommand(serve: Command, cli: CliContext) {
  serve
    .option('--https <host:port>', 'HTTPS listener, which also answers plain HTTP for artifacts (default [::]:8443)')
    .option('--http <host:port>', 'extra plain-HTTP listener for artifacts')
    .option('--tls-cert <file>', 'certificate (PEM); default: a self-signed one in the data dir')
    .option('--tls-key <file>', 'private key (PEM)')
    .option('--mirror-of <url>', 'serve as a caching mirror of this origin (https://...)')
    .option('--origin-certificate <file>', "the origin's certificate (PEM), trusted instead of the system CA store")
    .option('--origin-key <file>', "the origin's OpenPGP public key: its index is used only when signed by it")
    .option('--geoip-db <file>', 'mmdb GeoIP database: steer downloads to the sites of the client\'s region (wharf site add)')
    .option('--trusted-proxy <cidr>', 'believe X-Forwarded-For from these addresses (repeatable)', collect, [])
    .option('--site-check-interval <duration>', 'how often the sites are checked (default 60s)')
    .option('--blob-redirect', 'S3: answer artifact downloads with a redirect to a short-lived presigned URL of the object store')
    .option('--blob-redirect-endpoint <url>', 'S3: the endpoint clients reach the object store at, if not AWS_ENDPOINT_URL_S3')
    .action(async (opts: { https?: string; http?: string; tlsCert?: string; tlsKey?: string; mirrorOf?: string; originCertificate?: string; originKey?: string; geoipDb?: string; trustedProxy: string[]; siteCheckInterval?: string; blobRedirect?: boolean; blobRedirectEndpoint?: string }) => {
      const { trustedProxy, blobRedirect, ...given } = opts;
      const flags = { ...given, ...(blobRedirect ? { blobRedirect: 'true' } : {}) };
      const config = await cliConfig(cli, { ...flags, ...(trustedProxy.length ? { trustedProxies: trustedProxy } : {}) });
      const log = createLogger({ level: cli.globals().debug ? 'debug' : config.logLevel, write: (line) => cli.io.stderr.write(line) });
      const server = await startServer(config, log);
      if (server.tls.created) {
        cli.io.stderr.write(`Created a self-signed certificate: ${server.tls.certPath}\n`);
      }
      cli.io.stderr.write(
        (config.mirrorOf ? `wharf is a caching mirror of ${config.mirrorOf}, on https://${config.https} (port ${server.httpsPort})\n` : `wharf is serving ${config.dataDir} on https://${config.https} (port ${server.httpsPort})\n`) +
          `Certificate ${server.tls.certPath}, SHA-256 fingerprint ${server.tls.fingerprint}\n`,
      );
      // SIGHUP: the log level from the config file (and environment) again.
      const reload = () => {
        cliConfig(cli, flags)
          .then((again) => {
            server.setLogLevel(cli.globals().debug ? 'debug' : again.logLevel);
            log.warn('log level set', { logLevel: log.threshold });
          })
          .catch((err: unknown) => log.error('cannot read the settings again; nothing changed', { err }));
      };
      process.on('SIGHUP', reload);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      // Downloads in progress may finish (shutdown_timeout); a second signal cuts them.
      const cut = () => {
        log.warn('stopping now: downloads in progress are cut');
        process.exit(1);
      };
      process.once('SIGINT', cut);
      process.once('SIGTERM', cut);
      log.info('stopping: no new connections, downloads in progress may finish', { graceSeconds: config.shutdownTimeout });
      await server.close(config.shutdownTimeout * 1000);
      process.off('SIGHUP', reload);
    });
}
