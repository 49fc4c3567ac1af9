/** An Image record for unit tests that need no files: sensible defaults, override what matters. */
import type { Image } from '../../src/domain/image.ts';

export function imageRecord(overrides: Partial<Image> & Pick<Image, 'fingerprint'>): Image {
  return {
    type: 'container',
    architecture: 'x86_64',
    filename: 'f',
    size: 3,
    public: true,
    createdAt: '2026-11-22T07:42:00.000Z',
    uploadedAt: '2026-11-22T08:00:00.000Z',
    expiresAt: null,
    lastUsedAt: null,
    properties: {},
    templates: {},
    metadata: { sha256: overrides.fingerprint, size: 1, format: { kind: 'tarball', compression: 'xz' } },
    rootfs: null,
    autoUpdate: false,
    cached: false,
    updateSource: null,
    productAliases: [],
    mirror: null,
    deltas: [],
    channels: ['default'],
    pinned: [],
    stage: null,
    revision: 1,
    ...overrides,
  };
}
