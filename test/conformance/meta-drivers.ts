/**
 * The metadata drivers every test/conformance/meta-*.test.ts suite runs against, and the records
 * they share. A new driver joins `metaDrivers` and must pass every suite unchanged.
 *
 * `open` gives a store; `peer()` another handle on the same data, which behaves like another
 * process (for SQLite, another connection to the same file). Closing a handle without releasing
 * what it holds is how a suite plays a process that was killed.
 */
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { SqliteMetaStore } from '../../src/meta/sqlite.ts';
import { MemoryMetaStore } from '../../src/meta/memory.ts';
import { PostgresMetaStore } from '../../src/meta/postgres.ts';
import { freshDatabase } from '../helpers/postgres.ts';
import type { MetaStore } from '../../src/meta/store.ts';
import type { Alias, Delta, Image } from '../../src/domain/image.ts';
import { isAppError, type ErrorCode } from '../../src/errors.ts';
import { tempDir } from '../helpers/env.ts';
import { imageRecord } from '../helpers/image-record.ts';

export type Context = Parameters<typeof tempDir>[0];

export interface OpenedMeta {
  store: MetaStore;
  /** Another handle on the same store, as another process would have; closed after the test. */
  peer(): MetaStore;
}

/** Closes at the end of the test, unless the test closed it first. */
function closeAfter<T extends MetaStore>(t: Context, store: T): T {
  let closed = false;
  const close = store.close.bind(store);
  store.close = async () => {
    if (closed) return;
    closed = true;
    await close();
  };
  t.after(() => store.close());
  return store;
}

/** `announcesChanges`: its stores implement `ChangeFeed.watch`. */
export const metaDrivers: { name: string; announcesChanges?: boolean; open(t: Context): Promise<OpenedMeta> }[] = [
  {
    name: 'sqlite',
    async open(t) {
      const path = join(await tempDir(t), 'wharf.db');
      return { store: closeAfter(t, new SqliteMetaStore(path)), peer: () => closeAfter(t, new SqliteMetaStore(path)) };
    },
  },
  {
    name: 'memory',
    async open(t) {
      const store = closeAfter(t, new MemoryMetaStore());
      return { store, peer: () => closeAfter(t, store.share()) };
    },
  },
  {
    name: 'postgres',
    announcesChanges: true,
    async open(t) {
      const url = await freshDatabase();
      const store = closeAfter(t, await PostgresMetaStore.open(url));
      // Other replicas' connections, opened now (opening is async; a suite asks for them in passing).
      const peers = await Promise.all([1, 2].map(async () => closeAfter(t, await PostgresMetaStore.open(url))));
      return {
        store,
        peer: () => {
          const next = peers.shift();
          if (!next) throw new Error('the postgres driver opens two peers per test: open more in meta-drivers.ts');
          return next;
        },
      };
    },
  },
];

/** A sha256-shaped name: `sha('a', 1)` is 'a' then the number in hex, padded to 64 digits. */
export function sha(prefix: string, n = 0): string {
  return prefix + n.toString(16).padStart(64 - prefix.length, '0');
}

/** A split image whose blobs are named after it (metadata `m…`, rootfs `r…`), public by default. */
export function splitImage(fingerprint: string, overrides: Partial<Image> = {}): Image {
  return imageRecord({
    fingerprint,
    metadata: { sha256: sha('e', parseInt(fingerprint.slice(-6), 16)), size: 100, format: { kind: 'tarball', compression: 'xz' } },
    rootfs: { sha256: sha('f', parseInt(fingerprint.slice(-6), 16)), size: 2000, format: { kind: 'squashfs' } },
    size: 2100,
    ...overrides,
  });
}

export function delta(sha256: string, base: string): Delta {
  return { sha256, size: 10, format: { kind: 'vcdiff' }, ftype: 'squashfs.vcdiff', base };
}

export function alias(name: string, fingerprint: string, description = ''): Alias {
  return { name, fingerprint, description, type: 'container' };
}

/** Asserts that `promise` fails with an AppError of `code`. */
export async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isAppError(err), `expected an AppError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

/** An ISO timestamp `ms` from now (negative: in the past). */
export const fromNow = (ms: number) => new Date(Date.now() + ms).toISOString();
