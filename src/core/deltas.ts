/**
 * Deltas made when a version enters a channel: one squashfs delta (VCDIFF, by xdelta3) from the
 * previous version of its product in that channel, so a client holding that version downloads
 * the difference instead of the whole rootfs (LXD and Incus daemons apply it with xdelta3 when
 * they have it: on auto-update, `image refresh`, and a copy of a newer version).
 *
 * Clients abort on any delta error with no fallback to the full file (../shared/deltas-channels.md),
 * so a delta is decoded and checked against the new rootfs's sha256 before it is recorded; a
 * version gets at most one delta (two with both bases cached make both clients fail); only
 * container squashfs pairs get one (Incus applies a VM delta to the container's rootfs); never
 * `xdelta3 -n`, which drops the per-window checksums that catch a wrong base. The publisher lists a
 * delta only while its base version is listed beside it (domain/simplestreams.ts).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import type { Image } from '../domain/image.ts';
import { productOf, serialOf } from '../domain/product.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import { commitBlobs } from './collect.ts';
import type { Store } from './context.ts';

export const deltaFtype = 'squashfs.vcdiff';

/** Whether xdelta3 (Debian package xdelta3) is on the PATH. */
export function haveXdelta3(): boolean {
  return spawnSync('xdelta3', ['-V'], { stdio: 'ignore' }).status === 0;
}

const squashfsContainer = (image: Image) => image.type === 'container' && image.rootfs?.format.kind === 'squashfs';

/**
 * The version a new one in `channel` gets its delta from: the newest older container squashfs
 * build of the same product in that channel. Undefined when there is none, or the image cannot
 * have a delta (not a container squashfs, or it has one already).
 */
export function deltaBaseFor(image: Image, channel: string, images: Image[], releaseNames: Store['releaseNames']): Image | undefined {
  if (!squashfsContainer(image) || image.deltas.length > 0) return undefined;
  const product = productOf(image, releaseNames).key;
  const serial = serialOf(image);
  return images
    .filter((i) => i.fingerprint !== image.fingerprint && i.channels.includes(channel) && squashfsContainer(i) && serialOf(i) < serial && productOf(i, releaseNames).key === product)
    .sort((a, b) => (serialOf(a) < serialOf(b) ? 1 : -1))[0];
}

/** xdelta3 with `args`, its stdin and stdout piped; `done` settles when it exits (rejects unless 0). */
function xdelta3(args: string[]): { child: ChildProcessWithoutNullStreams; done: Promise<void> } {
  const child = spawn('xdelta3', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new AppError(ErrorCodes.internal, `xdelta3 ${args[0]} failed (${code}): ${stderr.trim()}`))));
  });
  return { child, done };
}

/**
 * Makes, checks and records the delta from `base` to `image` (both stored container squashfs
 * builds). Returns it, or throws leaving the store as it was.
 *
 * One pass, on both cores: xdelta3 encodes from the stored files themselves (a copy where the store
 * is remote), and each byte of delta it emits goes both into the blob writer and into a decoder,
 * whose output is hashed: the delta is checked as it is made (VCDIFF decodes as a stream), not
 * read again after.
 */
export async function makeDelta(store: Store, image: Image, base: Image): Promise<{ sha256: string; size: number }> {
  const writer = await store.blobs.createWriter();
  try {
    const decoded = await store.blobs.withLocalFile(base.rootfs!.sha256, (from) =>
      store.blobs.withLocalFile(image.rootfs!.sha256, (to) => encodeChecked(from, to, (chunk) => writer.write(chunk))),
    );
    // Decoded before it is listed: the bytes it gives must be the new rootfs, exactly.
    if (decoded !== image.rootfs!.sha256) throw new AppError(ErrorCodes.internal, 'The delta does not decode to the new rootfs');
    const sha256 = await writer.digest();
    const size = writer.size;
    await commitBlobs(store, [writer], () => store.meta.addDeltas(image.fingerprint, [{ sha256, size, format: { kind: 'vcdiff' }, ftype: deltaFtype, base: serialOf(base) }]));
    return { sha256, size };
  } finally {
    await writer.abort();
  }
}

/** Encodes `to` against `from` into `write`, decoding the delta as it comes: the sha256 it decodes to. */
async function encodeChecked(from: string, to: string, write: (chunk: Buffer) => Promise<void>): Promise<string> {
  const encoder = xdelta3(['-e', '-c', '-s', from, to]);
  const decoder = xdelta3(['-d', '-c', '-s', from]);
  encoder.child.stdin.end();
  // A tool that exits early makes writes to it fail: its exit status says why.
  decoder.child.stdin.on('error', () => {});
  const decoded = createHash('sha256');
  const hashing = (async () => {
    for await (const chunk of decoder.child.stdout) decoded.update(chunk as Buffer);
  })();
  const teeing = (async () => {
    for await (const chunk of encoder.child.stdout) {
      await write(chunk as Buffer);
      if (!decoder.child.stdin.write(chunk)) await Promise.race([once(decoder.child.stdin, 'drain'), decoder.done]);
    }
    decoder.child.stdin.end();
  })();
  // Any part failing (a full disk) stops both tools, so every part settles.
  const parts = [teeing, hashing, encoder.done, decoder.done];
  for (const part of parts) {
    part.catch(() => {
      encoder.child.kill();
      decoder.child.kill();
    });
  }
  const failed = (await Promise.allSettled(parts)).find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) throw failed.reason;
  return decoded.digest('hex');
}

/**
 * The delta a version gets on entering `channel`, if it can have one: what was made, or why none
 * was (for the CLI to say).
 */
export async function deltaOnEntering(store: Store, image: Image, channel: string): Promise<{ made?: { base: string; size: number }; skipped?: string }> {
  const base = deltaBaseFor(image, channel, await store.meta.listImages(), store.releaseNames);
  if (!base) return { skipped: image.deltas.length ? 'it has a delta already' : 'no earlier container squashfs build of its product in the channel' };
  if (!haveXdelta3()) return { skipped: 'xdelta3 is not installed (Debian package xdelta3)' };
  const { size } = await makeDelta(store, image, base);
  return { made: { base: serialOf(base), size } };
}
