/** Where a mirror keeps its cache in the data directory: beside (never inside) the image store's blobs. */
import { join } from 'node:path';

export function cacheLocation(dataDir: string) {
  return { dir: join(dataDir, 'cache'), blobs: join(dataDir, 'cache', 'blobs'), originIndex: join(dataDir, 'cache', 'origin-index.json') };
}
