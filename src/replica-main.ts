/** Entry of an extra serving process (see replicas.ts): serves until the first process says stop or goes away. */
import { enableCompileCache } from 'node:module';
import type { ControlMessage, ReplicaJob, ReplicaMessage } from './replicas.ts';

enableCompileCache();
const { createLogger } = await import('./log.ts');
const { startServer } = await import('./server.ts');

const send = (message: ReplicaMessage) => process.send?.(message);

// Ctrl-C reaches the whole process group: the first process decides when this one stops.
process.on('SIGINT', () => {});

process.once('message', async (job: ReplicaJob) => {
  const log = createLogger({ level: job.logLevel, base: { process: process.pid } });
  try {
    const server = await startServer(job.config, log, { replicaOf: { ...job.ports, ticketKeys: Buffer.from(job.ticketKeys, 'hex') } });
    let closing: Promise<void> | undefined;
    const stop = (graceMs: number) => {
      closing ??= server.close(graceMs).finally(() => process.exit(0));
    };
    const ownGraceMs = job.config.shutdownTimeout * 1000;
    process.on('message', (m: ControlMessage) => {
      if (m?.type === 'stop') stop(m.graceMs);
      else if (m?.type === 'log-level') server.setLogLevel(m.level);
    });
    // The first process is gone: finish what is in progress, as on SIGTERM (systemd sends it to
    // every process of the service).
    process.once('disconnect', () => stop(ownGraceMs));
    process.once('SIGTERM', () => stop(ownGraceMs));
    send({ ready: true });
  } catch (err) {
    send({ failed: (err as Error).message });
    process.exit(1);
  }
});
