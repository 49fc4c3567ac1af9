/**
 * Who this process is to the others that share a store: leases and claims name their holder by
 * it. A process id alone would not do: another host has the same ones, and a restarted container
 * whose server is pid 1 again would be taken for the holder that crashed. The random part makes
 * every start a new holder.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

export const instanceId = `${hostname()}/${process.pid}/${randomBytes(6).toString('hex')}`;
