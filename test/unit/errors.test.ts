/** The error catalogue: one row per code, statuses and exit statuses that say whose fault it is. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError, ErrorCodes, asUpstreamFault, errorCatalogue, errorEntry, isAppError, type ErrorCode } from '../../src/errors.ts';
import { httpStatus } from '../../src/http/errors.ts';

const codes = Object.values(ErrorCodes);

test('every code has one row: an HTTP error status, a sysexits exit status, a meaning', () => {
  assert.deepEqual(Object.keys(errorCatalogue).sort(), [...codes].sort());
  for (const code of codes) {
    const { status, exit, meaning } = errorCatalogue[code];
    assert.ok(status >= 400 && status < 600, `${code}: ${status}`);
    // sysexits.h: EX_USAGE (64) to EX_CONFIG (78); never 0, 1 or a signal's 128+N.
    assert.ok(exit >= 64 && exit <= 78, `${code}: exit ${exit}`);
    assert.ok(meaning.length > 10, code);
    assert.equal(httpStatus(new AppError(code, 'x')), status);
    assert.equal(errorEntry(new AppError(code, 'x')).exit, exit);
  }
});

test("the client's faults are 4xx; wharf's and an upstream's are 5xx", () => {
  const clients: ErrorCode[] = ['invalid_argument', 'ambiguous', 'not_found', 'conflict', 'invalid_image', 'integrity', 'too_large', 'range_not_satisfiable', 'precondition_failed', 'forbidden', 'unauthorized'];
  for (const code of codes) assert.equal(errorCatalogue[code].status < 500, clients.includes(code), code);
  assert.equal(errorCatalogue.upstream_corrupt.status, 502);
  assert.equal(errorCatalogue.unavailable.status, 502);
  assert.equal(errorCatalogue.invalid_image.status, 400, "a client's own bad upload stays 400");
  assert.equal(errorCatalogue.integrity.status, 400);
  assert.notEqual(errorCatalogue.upstream_corrupt.exit, errorCatalogue.invalid_image.exit, 'a script can tell them apart');
});

test('errors that are not AppError are internal, but a framework error keeps its 4xx/5xx status', () => {
  assert.deepEqual(errorEntry(new Error('boom')), errorCatalogue.internal);
  assert.deepEqual(errorEntry('not even an error'), errorCatalogue.internal);
  assert.deepEqual(errorEntry(undefined), errorCatalogue.internal);
  const framework = Object.assign(new Error('Bad Request'), { statusCode: 400 });
  assert.equal(errorEntry(framework).status, 400);
  assert.equal(errorEntry(framework).exit, errorCatalogue.internal.exit);
  assert.equal(errorEntry(Object.assign(new Error('x'), { statusCode: 200 })).status, 500, 'a success status is no error status');
  assert.equal(errorEntry(Object.assign(new Error('x'), { statusCode: '404' })).status, 500);
});

test('asUpstreamFault: what describes the bytes becomes upstream_corrupt, the rest stays', () => {
  const hash = new AppError(ErrorCodes.integrity, 'Fingerprint mismatch', { hint: 'h' });
  const moved = asUpstreamFault(hash);
  assert.ok(isAppError(moved, 'upstream_corrupt'));
  assert.equal(moved.message, 'Fingerprint mismatch');
  assert.equal(moved.hint, 'h');
  assert.equal(moved.cause, hash);
  assert.ok(isAppError(asUpstreamFault(new AppError(ErrorCodes.invalidImage, 'no metadata.yaml')), 'upstream_corrupt'));
  for (const kept of [new AppError(ErrorCodes.conflict, 'exists'), new AppError(ErrorCodes.invalidArgument, 'bad alias'), new AppError(ErrorCodes.unavailable, 'down'), new Error('x')]) {
    assert.equal(asUpstreamFault(kept), kept);
  }
  const body = new AppError(ErrorCodes.invalidArgument, 'Invalid multipart');
  assert.ok(isAppError(asUpstreamFault(body, [ErrorCodes.invalidArgument]), 'upstream_corrupt'));
});

test('the tables in README.md and docs/architecture.md say what the catalogue says', async () => {
  for (const [file, statusColumn, exitColumn] of [['README.md', 1, 2], ['docs/architecture.md', 2, 3]] as const) {
    const text = await readFile(join(import.meta.dirname, '..', '..', file), 'utf8');
    const rows = new Map<string, string[]>();
    for (const line of text.split('\n')) {
      const cells = line.split('|').slice(1, -1).map((c) => c.trim());
      const code = /^`([a-z_]+)`$/.exec(cells[0] ?? '')?.[1];
      if (code && (codes as string[]).includes(code) && /^\d{3}$/.test(cells[statusColumn] ?? '')) rows.set(code, cells);
    }
    assert.deepEqual([...rows.keys()].sort(), [...codes].sort(), `${file}: one row per code`);
    for (const [code, cells] of rows) {
      const entry = errorCatalogue[code as ErrorCode];
      assert.equal(Number(cells[statusColumn]), entry.status, `${file}: ${code} status`);
      assert.equal(Number.parseInt(cells[exitColumn]!, 10), entry.exit, `${file}: ${code} exit`);
    }
  }
});
