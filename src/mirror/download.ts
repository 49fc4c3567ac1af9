/**
 * One remote file into the blob store, checked against the size and sha256 an index promised:
 * for files that are not image parts (deltas) or that arrive after publishing (lazy mirrors).
 */
import type { BlobStore, BlobWriter } from '../blob/store.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import { openUrl, withoutSecrets, type FetchOptions } from '../remote/fetch.ts';

/** Downloads and verifies the file into a staged writer; the caller commits or aborts it. */
export async function stageDownload(blobs: BlobStore, url: URL, expected: { sha256: string; size: number }, options: FetchOptions = {}): Promise<BlobWriter> {
  const res = await openUrl(url, options);
  const where = withoutSecrets(url.href);
  if (res.statusCode !== 200) {
    res.resume();
    throw new AppError(ErrorCodes.unavailable, `upstream answered HTTP ${res.statusCode} for ${where}`);
  }
  const writer = await blobs.createWriter();
  try {
    for await (const chunk of res as AsyncIterable<Uint8Array>) {
      if (writer.size + chunk.byteLength > expected.size) {
        throw new AppError(ErrorCodes.upstreamCorrupt, `${where} is larger than the ${expected.size} bytes its index lists`);
      }
      await writer.write(chunk);
    }
    if (writer.size !== expected.size) throw new AppError(ErrorCodes.upstreamCorrupt, `${where} is truncated: ${writer.size} of ${expected.size} bytes`);
    const digest = await writer.digest();
    if (digest !== expected.sha256) throw new AppError(ErrorCodes.upstreamCorrupt, `Hash mismatch for ${where}: ${digest} != ${expected.sha256}`);
    return writer;
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

/** A file whose record already exists (a lazily mirrored one): downloaded, verified, committed. */
export async function downloadBlob(blobs: BlobStore, url: URL, expected: { sha256: string; size: number }, options: FetchOptions = {}): Promise<void> {
  const writer = await stageDownload(blobs, url, expected, options);
  try {
    await writer.commit(expected.sha256);
  } finally {
    await writer.abort();
  }
}
