import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SqliteMetaStore } from '../../src/meta/sqlite.ts';
import { FsBlobStore } from '../../src/blob/fs.ts';
import { silentLogger } from '../../src/log.ts';
import { defaultReleaseNames } from '../../src/domain/release-names.ts';
import { resolveImage } from '../../src/core/resolve.ts';
import type { Image } from '../../src/domain/image.ts';
import type { Store } from '../../src/core/context.ts';
import { tempDir } from '../helpers/env.ts';
import { imageRecord } from '../helpers/image-record.ts';

function fakeImage(fingerprint: string): Image {
  return imageRecord({ fingerprint, metadata: { sha256: fingerprint, size: 1, format: { kind: 'tarball', compression: 'gzip' } } });
}

test('IMAGE is an alias or a unique fingerprint prefix; ambiguity lists the candidates', async (t) => {
  const dir = await tempDir(t);
  const meta = new SqliteMetaStore(join(dir, 'db'));
  t.after(() => meta.close());
  const store: Store = { meta, blobs: new FsBlobStore(join(dir, 'blobs')), log: silentLogger, graceSeconds: 0, releaseNames: defaultReleaseNames };
  const a = 'abc1' + '0'.repeat(60);
  const b = 'abc2' + '0'.repeat(60);
  await meta.insertImage(fakeImage(a), [{ name: 'web', fingerprint: a, description: '', type: 'container' }]);
  await meta.insertImage(fakeImage(b), []);
  assert.equal((await resolveImage(store, 'web')).fingerprint, a);
  assert.equal((await resolveImage(store, 'abc2')).fingerprint, b);
  assert.equal((await resolveImage(store, 'ABC1')).fingerprint, a);
  await assert.rejects(resolveImage(store, 'abc'), (err: Error & { hint?: string }) => {
    assert.match(err.message, /More than one image matches "abc"/);
    assert.ok(err.hint?.includes(a) && err.hint.includes(b));
    return true;
  });
  await assert.rejects(resolveImage(store, 'fff'), /Image "fff" not found/);
  await assert.rejects(resolveImage(store, 'no-such-alias'), /not found/);
  await assert.rejects(meta.insertImage(fakeImage(a), []), /already exists/);
});
