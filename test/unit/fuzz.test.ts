/**
 * Property-based fuzzing of the parsers that read untrusted input: tarballs, metadata.yaml, file
 * signatures, Range headers, upload headers, API filters and multipart upload bodies. Each must
 * either answer within its contract or fail with an AppError of the documented code: never throw
 * anything else, never hang. Run counts are bounded so the file stays well under 30 seconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { FastifyRequest } from 'fastify';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { AppError, isAppError } from '../../src/errors.ts';
import { inspectTarball, tarballInspector } from '../../src/archive/inspect.ts';
import { parseMetadataYaml, maxMetadataYamlBytes } from '../../src/domain/metadata.ts';
import { detectFormat, type Compression } from '../../src/domain/formats.ts';
import { knownArchitectures } from '../../src/domain/architecture.ts';
import { parseRange } from '../../src/http/send-blob.ts';
import { uploadHeaders } from '../../src/http/lxd/upload.ts';
import { matchesApiFilter, parseFilter } from '../../src/domain/api-filter.ts';
import { imageBodySources } from '../../src/transfer/image-body.ts';
import { validateAliasName } from '../../src/core/aliases.ts';
import { compress, metadataYaml, packTar, unifiedEntries } from '../fixtures/hostile.ts';

/** Settles within `ms` or fails the property with "hung". */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Anything thrown must be an AppError with one of these codes. */
function assertAppError(err: unknown, codes: string[], what: string) {
  if (!isAppError(err) || !codes.includes(err.code)) {
    assert.fail(`${what}: threw ${err instanceof Error ? `${err.constructor.name} ${(err as { code?: string }).code ?? ''}: ${err.message}` : String(err)}`);
  }
  assert.ok(err.message.length > 0, `${what}: an empty message`);
}

type Inspect = (bytes: Uint8Array, compression: Compression) => ReturnType<typeof inspectTarball>;

/** The way an import feeds the inspector (core/ingest.ts): write the bytes, end, await the summary. */
const viaInspector: Inspect = (bytes, compression) => {
  const { sink, summary } = tarballInspector(compression, 'fuzz.tar');
  sink.on('error', () => {}); // reported through the summary
  sink.end(Buffer.from(bytes));
  return summary;
};
/** The whole-stream helper. */
const viaInspectTarball: Inspect = (bytes, compression) => inspectTarball(Readable.from([Buffer.from(bytes)]), compression, 'fuzz.tar');

async function inspectOrAppError(bytes: Uint8Array, compression: Compression, inspect: Inspect = viaInspector) {
  try {
    const summary = await within(5000, `inspect ${compression}`, inspect(bytes, compression));
    assert.ok(summary.entries > 0);
    if (summary.metadataYaml !== undefined) assert.ok(Buffer.byteLength(summary.metadataYaml) <= maxMetadataYamlBytes * 3); // U+FFFD may triple invalid bytes
    return summary;
  } catch (err) {
    assertAppError(err, ['invalid_image'], `inspect ${compression} of ${bytes.length} bytes`);
    return undefined;
  }
}

test('tarball inspector: random bytes are an invalid_image AppError, never another error or a hang', async () => {
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), fc.constantFrom<Compression>('none', 'gzip', 'zstd'), async (bytes, c) => {
    await inspectOrAppError(bytes, c);
  }), { numRuns: 300 });
  // The system tools cost a process each: fewer runs.
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), fc.constantFrom<Compression>('xz', 'bzip2', 'lz4', 'lzma'), async (bytes, c) => {
    await inspectOrAppError(bytes, c);
  }), { numRuns: 40 });
});

test('tarball inspector: valid tarballs with random damage resolve or fail with invalid_image', async () => {
  const plain = await packTar(unifiedEntries({ seed: 'fuzz', padBytes: 2048 }));
  const originals: Record<'none' | 'gzip' | 'zstd', Buffer> = { none: plain, gzip: await compress(plain, 'gzip'), zstd: await compress(plain, 'zstd') };
  const mutation = fc.record({
    compression: fc.constantFrom<'none' | 'gzip' | 'zstd'>('none', 'gzip', 'zstd'),
    flips: fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
    keep: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
    splice: fc.option(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.uint8Array({ maxLength: 600 })), { nil: undefined }),
  });
  await fc.assert(fc.asyncProperty(mutation, async ({ compression, flips, keep, splice }) => {
    let bytes = Buffer.from(originals[compression]);
    for (const [where, xor] of flips) {
      const at = Math.floor(where * bytes.length);
      bytes[at] = bytes[at]! ^ xor;
    }
    if (splice) {
      const at = Math.floor(splice[0] * bytes.length);
      bytes = Buffer.concat([bytes.subarray(0, at), splice[1], bytes.subarray(at)]);
    }
    if (keep !== undefined) bytes = bytes.subarray(0, Math.floor(keep * bytes.length));
    await inspectOrAppError(bytes, compression);
  }), { numRuns: 400 });
});

test('tarball inspector: a compressed tarball cut short by any number of bytes is never accepted', async () => {
  const plain = await packTar(unifiedEntries({ seed: 'fuzz-cut', padBytes: 2048 }));
  const kinds = ['gzip', 'zstd', 'xz', 'bzip2', 'lz4'] as const;
  const compressed = Object.fromEntries(await Promise.all(kinds.map(async (c) => [c, await compress(plain, c)] as const)));
  await fc.assert(fc.asyncProperty(fc.constantFrom(...kinds), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), async (c, fraction) => {
    const bytes = compressed[c]!;
    // Weighted towards the end, where the stream's trailer (sizes, checksums) lives.
    const cut = Math.max(1, Math.floor((1 - fraction ** 4) * bytes.length));
    const summary = await inspectOrAppError(bytes.subarray(0, bytes.length - cut), c);
    assert.equal(summary, undefined, `${c} cut short by ${cut} of ${bytes.length} bytes was accepted`);
  }), { numRuns: 60 });
});

test('inspectTarball (the whole-stream helper) fails the same way: invalid_image only', async () => {
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), fc.constantFrom<Compression>('none', 'gzip', 'zstd'), async (bytes, c) => {
    await inspectOrAppError(bytes, c, viaInspectTarball);
  }), { numRuns: 200 });
});

const yamlValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.string(),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 3 }),
  ),
})).value;

function checkMetadata(text: string) {
  let m: ReturnType<typeof parseMetadataYaml>;
  try {
    m = parseMetadataYaml(text);
  } catch (err) {
    assertAppError(err, ['invalid_image'], 'parseMetadataYaml');
    return;
  }
  assert.ok(knownArchitectures.includes(m.architecture), `architecture ${m.architecture}`);
  assert.equal(typeof m.architectureRaw, 'string');
  assert.ok(Number.isInteger(m.creationDate) && m.creationDate > 0, `creationDate ${m.creationDate}`);
  assert.ok(m.expiryDate === undefined || (Number.isInteger(m.expiryDate) && m.expiryDate > 0), `expiryDate ${m.expiryDate}`);
  for (const [k, v] of Object.entries(m.properties)) assert.equal(typeof v, 'string', `properties.${k}`);
  for (const [path, tpl] of Object.entries(m.templates)) {
    assert.equal(typeof tpl.template, 'string', `template ${path}`);
    assert.ok(Array.isArray(tpl.when) && tpl.when.every((w) => typeof w === 'string'), `template ${path} when`);
  }
}

test('parseMetadataYaml: arbitrary text and YAML-ish documents give an invalid_image AppError or a well-formed result', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 400 }), checkMetadata), { numRuns: 500 });
  const doc = fc.record(
    {
      architecture: fc.oneof(fc.constantFrom('x86_64', 'amd64', 'aarch64', 'arm64', 'armhf', 'i686', 'riscv64', 's390x', 'ppc64le', 'vax', ''), yamlValue),
      creation_date: fc.oneof(fc.integer({ min: -10, max: 2 ** 40 }), fc.stringMatching(/^ ?\d{1,11} ?$/), yamlValue),
      expiry_date: fc.oneof(fc.integer({ min: -10, max: 2 ** 40 }), yamlValue),
      properties: fc.oneof(fc.dictionary(fc.string({ maxLength: 10 }), fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null))), yamlValue),
      templates: fc.oneof(
        fc.dictionary(
          fc.string({ maxLength: 10 }),
          fc.record({ when: fc.oneof(fc.array(fc.string(), { maxLength: 3 }), yamlValue), template: fc.oneof(fc.string(), yamlValue), extra: yamlValue }, { requiredKeys: [] }),
          { maxKeys: 3 },
        ),
        yamlValue,
      ),
    },
    { requiredKeys: [] },
  );
  fc.assert(fc.property(doc, (d) => checkMetadata(stringify(d))), { numRuns: 500 });
  // The fixture's own metadata parses (so the property above is not vacuous).
  assert.equal(parseMetadataYaml(metadataYaml()).architecture, 'x86_64');
});

test('detectFormat: any bytes give undefined or a known format; every signature is recognized', () => {
  const kinds = ['tarball', 'squashfs', 'qcow2', 'vcdiff'];
  const compressions = ['none', 'gzip', 'xz', 'lzma', 'bzip2', 'zstd', 'lz4'];
  const signatures: [number[], string][] = [
    [[0x1f, 0x8b], 'gzip'],
    [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'xz'],
    [[0x28, 0xb5, 0x2f, 0xfd], 'zstd'],
    [[0x42, 0x5a, 0x68], 'bzip2'],
    [[0x04, 0x22, 0x4d, 0x18], 'lz4'],
    [[0x5d, 0x00, 0x00], 'lzma'],
    [[0x68, 0x73, 0x71, 0x73], 'squashfs'],
    [[0x51, 0x46, 0x49, 0xfb], 'qcow2'],
  ];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 700 }), fc.option(fc.constantFrom(...signatures), { nil: undefined }), (bytes, signature) => {
      const head = signature ? Uint8Array.from([...signature[0], ...bytes]) : bytes;
      const format = detectFormat(head);
      if (format !== undefined) {
        assert.ok(kinds.includes(format.kind));
        if (format.kind === 'tarball') assert.ok(compressions.includes(format.compression));
      }
      if (signature) {
        const name = format?.kind === 'tarball' ? format.compression : format?.kind;
        assert.equal(name, signature[1]);
      }
    }),
    { numRuns: 500 },
  );
});

test('parseRange: undefined, unsatisfiable, or 0 <= start <= end < size', () => {
  const digits = fc.oneof(fc.constant(''), fc.nat().map(String), fc.stringMatching(/^\d{1,30}$/));
  const header = fc.oneof(
    fc.string(),
    fc.tuple(digits, digits).map(([a, b]) => `bytes=${a}-${b}`),
    fc.tuple(digits, digits, fc.constantFrom(' ', ',', ', ', '\t')).map(([a, b, sep]) => `bytes=${a}-${b}${sep}${a}-`),
  );
  const size = fc.oneof(fc.constant(0), fc.constant(1), fc.nat({ max: 10_000 }), fc.integer({ min: 0, max: 2 ** 45 }));
  fc.assert(
    fc.property(fc.option(header, { nil: undefined }), size, (h, n) => {
      const r = parseRange(h, n);
      if (r === undefined || r === 'unsatisfiable') return;
      assert.ok(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end), `${h} / ${n}: ${JSON.stringify(r)}`);
      assert.ok(r.start >= 0 && r.start <= r.end && r.end < n, `${JSON.stringify(h)} on ${n} bytes gave ${JSON.stringify(r)}`);
    }),
    { numRuns: 500 },
  );
});

test('uploadHeaders: any header values give a well-formed result', () => {
  const value = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.array(fc.string(), { minLength: 1, maxLength: 3 }));
  const names = ['public', 'filename', 'properties', 'aliases', 'fingerprint', 'secret'];
  const headers = fc.dictionary(fc.constantFrom(...names.flatMap((n) => [`x-lxd-${n}`, `x-incus-${n}`])), value);
  fc.assert(
    fc.property(headers, (h) => {
      let u: ReturnType<typeof uploadHeaders>;
      try {
        const rawHeaders = Object.entries(h).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).flatMap((x) => [k, x]));
        u = uploadHeaders({ headers: h, raw: { rawHeaders } } as unknown as FastifyRequest);
      } catch (err) {
        assertAppError(err, ['invalid_argument'], 'uploadHeaders');
        return;
      }
      assert.equal(typeof u.public, 'boolean');
      assert.ok(u.aliases.every((a) => typeof a === 'string'));
      assert.ok(Object.values(u.properties).every((v) => typeof v === 'string'));
      for (const k of ['filename', 'fingerprint', 'secret'] as const) assert.ok(u[k] === undefined || typeof u[k] === 'string', k);
    }),
    { numRuns: 400 },
  );
});

test('parseFilter and matchesApiFilter: any text is a filter or an invalid_argument AppError; matching never throws', () => {
  const image = {
    fingerprint: 'ab'.repeat(32),
    architecture: 'x86_64',
    public: true,
    type: 'container',
    aliases: [{ name: 'a/b', description: '' }],
    properties: { os: 'Debian', release: '12', 'odd.key': 'v' },
  };
  const word = fc.oneof(fc.constantFrom('properties.os', 'architecture', 'fingerprint', 'public', '__proto__', 'constructor.name', 'aliases.0.name', 'properties.odd.key'), fc.string({ maxLength: 8 }));
  const grammar = fc
    .array(
      fc.tuple(fc.boolean(), word, fc.constantFrom('eq', 'ne', 'EQ', 'gt'), fc.oneof(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }).map((s) => `"${s}"`)), fc.constantFrom('and', 'or', 'AND', 'xor')),
      { minLength: 1, maxLength: 4 },
    )
    .map((terms) => terms.map(([not, f, op, v, j], i) => `${not ? 'not ' : ''}${f} ${op} ${v}${i < terms.length - 1 ? ` ${j} ` : ''}`).join(''));
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), grammar), (text) => {
      let filter: ReturnType<typeof parseFilter>;
      try {
        filter = parseFilter(text);
      } catch (err) {
        assertAppError(err, ['invalid_argument'], `parseFilter(${JSON.stringify(text)})`);
        return;
      }
      assert.equal(typeof matchesApiFilter(filter, image), 'boolean');
    }),
    { numRuns: 500 },
  );
  assert.equal(matchesApiFilter(parseFilter('properties.os eq debian and not public eq false'), image), true, 'the property is not vacuous');
});

test('validateAliasName: any value is accepted as a string or refused with invalid_argument', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary', maxLength: 300 }), fc.anything()), (name) => {
      try {
        validateAliasName(name);
        assert.equal(typeof name, 'string');
      } catch (err) {
        // String(name) itself can throw for generated objects ({ toString: "" }).
        const shown = (() => {
          try {
            return JSON.stringify(name) ?? typeof name;
          } catch {
            return typeof name;
          }
        })();
        assertAppError(err, ['invalid_argument'], `validateAliasName(${shown})`);
      }
    }),
    { numRuns: 300 },
  );
});

/**
 * An IncomingMessage as imageBodySources reads it: a readable body with headers, `complete` once
 * the whole body arrived, or a client that hangs up after `body` (complete stays false).
 */
function fakeRequest(body: Buffer, headers: Record<string, string>, chunkSize: number, aborted: boolean): IncomingMessage {
  const message = { headers, complete: false };
  async function* chunks() {
    for (let i = 0; i < body.length; i += chunkSize) yield body.subarray(i, i + chunkSize);
    if (!aborted) message.complete = true;
  }
  const stream = Object.assign(Readable.from(chunks(), { objectMode: false }), { headers });
  Object.defineProperty(stream, 'complete', { get: () => message.complete });
  return stream as unknown as IncomingMessage;
}

/** Reads the sources as the import does: in order, stopping at the first failure. */
async function drain(sources: { chunks: AsyncIterable<Uint8Array> }[]): Promise<number> {
  let total = 0;
  for (const source of sources) for await (const chunk of source.chunks) total += chunk.byteLength;
  return total;
}

test('imageBodySources: random and damaged multipart bodies settle: sources that read to the end, or an AppError', async () => {
  const part = fc.record({
    name: fc.oneof(fc.constantFrom('metadata', 'rootfs', 'rootfs.img'), fc.string({ maxLength: 10 })),
    filename: fc.option(fc.string({ maxLength: 12 }).map((s) => s.replace(/["\r\n]/g, '')), { nil: undefined }),
    content: fc.uint8Array({ maxLength: 3000 }),
  });
  const body = fc.record({
    boundary: fc.oneof(fc.constant('wharf-boundary'), fc.stringMatching(/^[A-Za-z0-9'()+_,\-./:=?]{1,40}$/)),
    parts: fc.array(part, { maxLength: 3 }),
    damage: fc.oneof(
      fc.constant<{ kind: 'none' }>({ kind: 'none' }),
      fc.record({ kind: fc.constant('cut' as const), keep: fc.double({ min: 0, max: 1, noNaN: true }) }),
      fc.record({ kind: fc.constant('flip' as const), at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), xor: fc.integer({ min: 1, max: 255 }) }),
      fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ maxLength: 2000 }) }),
    ),
    contentType: fc.oneof(fc.constant('multipart/form-data; boundary=B'), fc.constantFrom('multipart/form-data', 'multipart/form-data; boundary=', 'multipart/form-data; boundary="B"', 'application/octet-stream', 'multipart/mixed; boundary=B')),
    limit: fc.oneof(fc.constant(1_000_000), fc.integer({ min: 0, max: 4000 })),
    chunkSize: fc.integer({ min: 1, max: 5000 }),
    declareLength: fc.boolean(),
    // The client hangs up after sending (what it sent of) the body.
    aborted: fc.boolean(),
  });
  await fc.assert(
    fc.asyncProperty(body, async ({ boundary, parts, damage, contentType, limit, chunkSize, declareLength, aborted }) => {
      let bytes = Buffer.concat([
        ...parts.map((p, i) =>
          Buffer.concat([
            Buffer.from(`${i ? '\r\n' : ''}--${boundary}\r\nContent-Disposition: form-data; name="${p.name.replace(/["\r\n]/g, '')}"${p.filename === undefined ? '' : `; filename="${p.filename}"`}\r\nContent-Type: application/octet-stream\r\n\r\n`),
            p.content,
          ]),
        ),
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      if (damage.kind === 'cut') bytes = bytes.subarray(0, Math.floor(damage.keep * bytes.length));
      if (damage.kind === 'flip') {
        const at = Math.floor(damage.at * bytes.length);
        bytes[at] = bytes[at]! ^ damage.xor;
      }
      if (damage.kind === 'garbage') bytes = Buffer.from(damage.bytes);
      const headers: Record<string, string> = { 'content-type': contentType.replace('B', boundary) };
      if (declareLength) headers['content-length'] = String(bytes.length);
      try {
        const sources = await within(3000, 'imageBodySources', imageBodySources(fakeRequest(bytes, headers, chunkSize, aborted), limit, 'upload.tar'));
        assert.ok(sources.length === 1 || sources.length === 2, `${sources.length} sources`);
        const total = await within(3000, 'reading the sources', drain(sources));
        assert.ok(total <= limit, `read ${total} bytes past the limit of ${limit}`);
        if (!contentType.startsWith('multipart/form-data') && !aborted) assert.equal(total, bytes.length, 'a raw body is read whole');
      } catch (err) {
        if (err instanceof AppError) {
          assert.ok(['invalid_argument', 'too_large'].includes(err.code), `code ${err.code}: ${err.message}`);
          return;
        }
        throw err;
      }
    }),
    { numRuns: 300 },
  );
});
