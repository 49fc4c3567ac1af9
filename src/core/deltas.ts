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
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
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

/** Runs xdelta3 with `args`; its stdout goes to `into` if given. Rejects on a non-zero exit. */
function xdelta3(args: string[], into?: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('xdelta3', args, { stdio: ['ignore', into ? 'pipe' : 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
    const piped = into && child.stdout ? pipeline(child.stdout, into) : Promise.resolve();
    child.on('error', reject);
    child.on('close', (code) => {
      piped.then(
        () => (code === 0 ? resolve() : reject(new AppError(ErrorCodes.internal, `xdelta3 ${args[0]} failed (${code}): ${stderr.trim()}`))),
        reject,
      );
    });
  });
}

/**
 * Makes, checks and records the delta from `base` to `image` (both stored container squashfs
 * builds). Returns its size, or throws leaving the store as it was.
 */
export async function makeDelta(store: Store, image: Image, base: Image): Promise<{ sha256: string; size: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-delta-'));
  try {
    const [from, to, out] = [join(dir, 'base.squashfs'), join(dir, 'new.squashfs'), join(dir, 'delta.vcdiff')];
    // xdelta3 seeks in its source, and both files are read twice (encode, then the check).
    await pipeline(await store.blobs.openRead(base.rootfs!.sha256), createWriteStream(from));
    await pipeline(await store.blobs.openRead(image.rootfs!.sha256), createWriteStream(to));
    await xdelta3(['-e', '-f', '-s', from, to, out]);
    // Decoded before it is listed: the bytes it gives must be the new rootfs, exactly.
    const decoded = createHash('sha256');
    await xdelta3(['-d', '-c', '-s', from, out], decoded as unknown as NodeJS.WritableStream);
    if (decoded.digest('hex') !== image.rootfs!.sha256) throw new AppError(ErrorCodes.internal, 'The delta does not decode to the new rootfs');
    const writer = await store.blobs.createWriter();
    try {
      for await (const chunk of createReadStream(out, { highWaterMark: 1 << 20 })) await writer.write(chunk as Buffer);
      const sha256 = await writer.digest();
      const size = (await stat(out)).size;
      await commitBlobs(store, [writer], () => store.meta.addDeltas(image.fingerprint, [{ sha256, size, format: { kind: 'vcdiff' }, ftype: deltaFtype, base: serialOf(base) }]));
      return { sha256, size };
    } finally {
      await writer.abort();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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
