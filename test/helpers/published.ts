/**
 * What every interop scenario checks on the server it drove: the served index, for every client
 * view, downloaded and checked as current clients check it (src/remote/verify-published.ts).
 */
import assert from 'node:assert/strict';
import { verifyPublished } from '../../src/remote/verify-published.ts';

export async function assertPublishedValid(server: { base: string; tls: { cert: string } }): Promise<void> {
  const report = await verifyPublished(server.base, { certificate: server.tls.cert });
  assert.deepEqual(report.problems, [], `${server.base} serves what current clients would refuse`);
}
