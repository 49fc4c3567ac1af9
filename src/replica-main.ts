/** Entry of an extra serving process (see replicas.ts): serves until the first process says stop or goes away. */
import { enableCompileCache } from 'node:module';
import type { ReplicaJob, ReplicaMessage } from './replicas.ts';

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
    const stop = () => {
      closing ??= server.close().finally(() => process.exit(0));
    };
    process.on('message', (m) => m === 'stop' && stop());
    process.once('disconnect', stop);
    process.once('SIGTERM', stop);
    send({ ready: true });
  } catch (err) {
    send({ failed: (err as Error).message });
    process.exit(1);
  }
});
