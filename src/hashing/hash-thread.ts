/** The worker side of off-thread-hash.ts: one sha256 per id, fed in order, acked per chunk and when dropped. */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

type Message = { id: number; op: 'init' | 'digest' | 'drop' } | { id: number; op: 'update'; data: Uint8Array };

const hashes = new Map<number, Hash>();
parentPort!.on('message', (message: Message) => {
  switch (message.op) {
    case 'init':
      hashes.set(message.id, createHash('sha256'));
      break;
    case 'update':
      hashes.get(message.id)?.update(message.data);
      parentPort!.postMessage({ id: message.id, ack: message.data.byteLength });
      break;
    case 'digest':
      parentPort!.postMessage({ id: message.id, digest: hashes.get(message.id)?.digest('hex') });
      hashes.delete(message.id);
      break;
    case 'drop':
      hashes.delete(message.id);
      parentPort!.postMessage({ id: message.id, dropped: true });
      break;
  }
});
