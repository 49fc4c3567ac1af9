/**
 * Benchmark 13: `wharf image import META ROOTFS` of the 1 GiB split image into an S3 blob store
 * (a real OpenStack Swift with s3api on this machine, as the tests run it), against the larger of
 * one sha256 pass over the same bytes (`sha256sum`) and the engine's own upload of the same bytes
 * with the SDK alone (a multipart upload of 8 MiB parts, the files read as they are sent).
 * Each runs 3 times, alternating; medians. Target (issue 24): <= 1.3x.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { s3Bucket } from '../test/helpers/s3.ts';
import { s3Location } from '../src/blob/s3-location.ts';
import { S3BlobDriver } from '../src/blob/s3.ts';
import { bigImage, fingerprintFrom, median, removeDir, report, requireCommands, runOk, tempDir, warm, wharfBin } from './lib.ts';

const runs = 3;
const partBytes = 8 * 1024 * 1024;
requireCommands('sha256sum', 'mksquashfs');

/** The SDK alone: each file uploaded as a multipart upload of 8 MiB parts, one at a time. */
async function sdkUpload(s3: S3Client, bucket: string, files: string[]): Promise<number> {
  const started = performance.now();
  for (const [n, file] of files.entries()) {
    const key = `sdk-alone/${n}-${Date.now()}`;
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const parts: { ETag: string; PartNumber: number }[] = [];
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const send = async (body: Buffer) => {
      const part = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: parts.length + 1, Body: body, ContentLength: body.length }));
      parts.push({ ETag: part.ETag!, PartNumber: parts.length + 1 });
    };
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
      pending.push(chunk as Buffer);
      pendingBytes += (chunk as Buffer).length;
      if (pendingBytes >= partBytes) {
        const all = Buffer.concat(pending);
        await send(all.subarray(0, partBytes));
        pending = [all.subarray(partBytes)];
        pendingBytes = all.length - partBytes;
      }
    }
    if (pendingBytes > 0 || parts.length === 0) await send(Buffer.concat(pending));
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
  }
  return performance.now() - started;
}

const work = await tempDir('s3-import');
try {
  const image = await bigImage(join(work, 'fixture'));
  await warm(image.meta, image.rootfs);
  const { env, url } = await s3Bucket();
  Object.assign(process.env, env);
  const location = s3Location(url)!;
  const driver = new S3BlobDriver(location, { pathStyle: true });
  await driver.init();
  await driver.close();
  const s3 = new S3Client({ forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });

  const wharf: number[] = [];
  const sha256sum: number[] = [];
  const sdk: number[] = [];
  for (let i = 0; i < runs; i++) {
    sha256sum.push((await runOk('sha256sum', [image.meta, image.rootfs])).ms);
    sdk.push(await sdkUpload(s3, location.bucket, [image.meta, image.rootfs]));
    const data = join(work, `data-${i}`);
    const result = await runOk(wharfBin, ['--data-dir', data, '--blob-store', `s3://${location.bucket}/run-${i}`, '--s3-path-style', 'image', 'import', image.meta, image.rootfs], { timeoutMs: 600_000, env: { ...process.env, ...env } });
    fingerprintFrom(result.stdout);
    wharf.push(result.ms);
    console.log(`run ${i + 1}: wharf ${result.ms.toFixed(0)} ms, SDK alone ${sdk[i]!.toFixed(0)} ms, sha256sum ${sha256sum[i]!.toFixed(0)} ms`);
  }
  s3.destroy();
  const floor = Math.max(median(sha256sum), median(sdk)) / 1000;
  report('13 import of a 1 GiB split image into S3 (Swift + s3api)', [
    { name: 'wall time, median of 3', wharf: median(wharf) / 1000, reference: floor, referenceName: 'max(sha256sum, SDK upload alone)', unit: 's', target: '<= 1.3x', pass: (r) => r <= 1.3 },
    { name: 'SDK upload alone, median of 3', wharf: median(sdk) / 1000, unit: 's', target: '-', pass: () => true, context: true },
    { name: 'sha256sum, median of 3', wharf: median(sha256sum) / 1000, unit: 's', target: '-', pass: () => true, context: true },
  ]);
} finally {
  await removeDir(work);
}
