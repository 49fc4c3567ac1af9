/**
 * Staging (issue 26): images builders push land in the staging channel with a stage
 * (domain/pipeline.ts). This runs their test hooks and lets each channel's gate promote them:
 *
 * - An `uploaded` image (or a `testing` one whose tester died: older than every hook's every
 *   attempt could take) is claimed by compare and set (`updateImage` at the revision read), so
 *   one process of all those sharing the store tests it; then it is `passed` or `failed`.
 * - A channel whose gate is `auto` takes a build (one product version, every architecture) once
 *   each of its staged images passed, all together, and it is complete (every architecture the
 *   channel has of the product, or `gate_wait` after its last upload): out of staging, public,
 *   `promoted`, with its delta from the channel's previous version, and the channel's retention
 *   applied.
 * - `wharf image promote` (a promoter: the CLI's user) and `wharf image reject` move one image.
 *
 * Each move is an image edit, so the catalogue logs its event (test.passed, image.promoted...)
 * in the same write; webhooks are sent from that log (pipeline/webhooks.ts).
 */
import { AppError, ErrorCodes, isAppError } from '../errors.ts';
import type { Image } from '../domain/image.ts';
import { stagingChannel } from '../domain/channel.ts';
import { buildKey, familyKey, gateOf, promotableBuild, type Stage } from '../domain/pipeline.ts';
import type { TestHook, TestResult } from '../domain/test-hooks.ts';
import { editImage } from '../core/images.ts';
import { applyRetention } from '../core/retention.ts';
import type { Store } from '../core/context.ts';
import { runTestHooks } from './hooks.ts';

/** Who the gates act as, in the event log and the channel history. */
export const gateActor = 'wharf';

/** A staged image still on its way: not yet promoted nor rejected. */
export const inStaging = (image: Image) => image.stage !== null && image.stage.state !== 'promoted' && image.stage.state !== 'rejected';

/** How long a test run may take: every hook's every attempt at its timeout, and a minute to spare. Past it, the tester died. */
export const testingDeadlineMs = (hooks: TestHook[]) => hooks.reduce((ms, h) => ms + h.timeoutSeconds * 1000 * (h.retries + 1), 60_000);

const stage = (state: Stage['state']): Stage => ({ state, at: new Date().toISOString() });

/** Whether this image waits for a tester now: uploaded, or left in testing by one that died; with `again`, also passed or failed. */
function waitsForTests(image: Image, hooks: TestHook[], again: boolean, now = Date.now()): boolean {
  const state = image.stage?.state;
  if (state === 'uploaded') return true;
  if (state === 'testing') return now - Date.parse(image.stage!.at) > testingDeadlineMs(hooks);
  return again && (state === 'passed' || state === 'failed');
}

/**
 * Tests a staged image if it waits for it and this caller wins it: the hooks' last attempts, or
 * undefined when another process has it (or it does not wait). `again`: test a passed or failed
 * image anew (`wharf image test`).
 */
export async function testStaged(store: Store, image: Image, hooks: TestHook[], again = false, signal?: AbortSignal): Promise<TestResult[] | undefined> {
  if (!hooks.length || !waitsForTests(image, hooks, again)) return undefined;
  try {
    // Compare and set at the revision read: of the processes that read it waiting, one wins.
    await store.meta.updateImage({ ...image, stage: stage('testing') }, gateActor);
  } catch (err) {
    if (isAppError(err, ErrorCodes.preconditionFailed) || isAppError(err, ErrorCodes.notFound)) return undefined;
    throw err;
  }
  store.log.info('testing a staged image', { fingerprint: image.fingerprint });
  let results: TestResult[];
  try {
    results = await runTestHooks(store, image, hooks, signal);
  } catch (err) {
    if (signal?.aborted) {
      // Stopped (the server is shutting down): it waits for its tests again, at once, not after the deadline.
      await editImage(store, image.fingerprint, (now) => (now.stage?.state === 'testing' ? { stage: stage('uploaded') } : {}), undefined, gateActor).catch(() => {});
      throw err;
    }
    // It could not be tested at all (its files unreadable): failed, with why in the log.
    store.log.error('the test hooks could not run', { fingerprint: image.fingerprint, err });
    await settleStage(store, image.fingerprint, 'failed');
    throw err;
  }
  const passed = results.every((r) => r.outcome === 'passed');
  await settleStage(store, image.fingerprint, passed ? 'passed' : 'failed');
  return results;
}

/** Records the outcome of a test run, unless the image left testing meanwhile (rejected, deleted). */
async function settleStage(store: Store, fingerprint: string, state: 'passed' | 'failed') {
  try {
    await editImage(store, fingerprint, (now) => (now.stage?.state === 'testing' ? { stage: stage(state) } : {}), undefined, gateActor);
  } catch (err) {
    if (!isAppError(err, ErrorCodes.notFound)) throw err;
  }
}

/**
 * Moves a staged image out of staging into `channels`, public, `promoted`, then makes its delta
 * from each channel's previous version and applies their retention. `force`: even if its tests
 * did not pass (an operator's call).
 */
export async function promoteStaged(store: Store, fingerprint: string, channels: string[], actor: string, options: { hooksConfigured: boolean; force?: boolean; delta?: boolean }): Promise<Image> {
  if (channels.includes(stagingChannel)) throw new AppError(ErrorCodes.invalidArgument, `Images are promoted out of ${stagingChannel}, not into it`);
  const promoted = await editImage(
    store,
    fingerprint,
    (image) => ({ channels: [...image.channels.filter((c) => c !== stagingChannel), ...channels], public: true, stage: { ...stage('promoted'), tested: image.stage?.state === 'passed' } }),
    (image) => {
      if (!image.stage || !inStaging(image)) throw new AppError(ErrorCodes.conflict, `Image ${image.fingerprint.slice(0, 12)} is not waiting in ${stagingChannel} (it is ${image.stage?.state ?? 'not staged'})`);
      if (options.hooksConfigured && image.stage.state !== 'passed' && !options.force) {
        throw new AppError(ErrorCodes.conflict, `Image ${image.fingerprint.slice(0, 12)} has not passed its tests (it is ${image.stage.state})`, {
          hint: `See its results with: wharf image tests ${image.fingerprint.slice(0, 12)}; promote it anyway with --force.`,
        });
      }
    },
    actor,
  );
  if (options.delta !== false) {
    const { deltaOnEntering } = await import('../core/deltas.ts');
    for (const channel of channels) {
      try {
        if ((await deltaOnEntering(store, promoted, channel)).made) break;
      } catch (err) {
        store.log.warn('no delta for a promoted image', { fingerprint, channel, err });
        break;
      }
    }
  }
  await applyRetention(store, channels);
  return promoted;
}

/** Takes a staged image out of the pipeline: rejected, out of staging, kept until deleted. */
export async function rejectStaged(store: Store, fingerprint: string, actor: string): Promise<Image> {
  return editImage(
    store,
    fingerprint,
    (image) => ({ channels: image.channels.filter((c) => c !== stagingChannel), stage: stage('rejected') }),
    (image) => {
      if (!inStaging(image)) throw new AppError(ErrorCodes.conflict, `Image ${image.fingerprint.slice(0, 12)} is not waiting in ${stagingChannel} (it is ${image.stage?.state ?? 'not staged'})`);
    },
    actor,
  );
}

/** The channels whose gate promotes on its own. */
export async function autoGateChannels(store: Store, hooksConfigured: boolean): Promise<string[]> {
  const settings = await store.meta.listChannels();
  const names = new Set(['default', ...settings.map((s) => s.name)]);
  names.delete(stagingChannel);
  return [...names].filter((name) => gateOf(name, settings.find((s) => s.name === name)?.gate, hooksConfigured) === 'auto').sort();
}

/**
 * One round of the pipeline over the store's staged images: tests what waits (one at a time),
 * then lets the automatic gates promote every build whose images all passed. What it did.
 */
export async function advancePipeline(store: Store, hooks: TestHook[], gateWaitMs: number, signal?: AbortSignal): Promise<{ tested: string[]; promoted: string[] }> {
  const tested: string[] = [];
  const promoted: string[] = [];
  for (const image of (await store.meta.listImages()).filter(inStaging)) {
    signal?.throwIfAborted();
    if (await testStaged(store, image, hooks, false, signal)) tested.push(image.fingerprint);
  }
  const channels = await autoGateChannels(store, hooks.length > 0);
  if (!channels.length) return { tested, promoted };
  const images = await store.meta.listImages();
  const published = Map.groupBy(images.filter((i) => i.public && i.channels.some((c) => channels.includes(c))), familyKey);
  for (const build of Map.groupBy(images.filter(inStaging), buildKey).values()) {
    for (const image of promotableBuild(build, published.get(familyKey(build[0]!)) ?? [], hooks.length > 0, gateWaitMs)) {
      try {
        await promoteStaged(store, image.fingerprint, channels, gateActor, { hooksConfigured: hooks.length > 0 });
        promoted.push(image.fingerprint);
      } catch (err) {
        // Another process promoted it first, or an operator rejected it meanwhile.
        if (!isAppError(err, ErrorCodes.conflict) && !isAppError(err, ErrorCodes.notFound)) throw err;
      }
    }
  }
  return { tested, promoted };
}

/**
 * Runs `advancePipeline` in the background jobs: a round whenever the catalogue changed (a push,
 * an operator's move), and every 30 s for testers that died; never two at once.
 */
export function startPipeline(store: Store, hooks: TestHook[], options: { gateWaitMs: number; pollMs?: number }): { stop(): Promise<void> } {
  let seen: number | undefined;
  let lastRound = 0;
  let running: Promise<void> | undefined;
  const stopping = new AbortController();
  const tick = async () => {
    const version = await store.meta.changeVersion();
    // Also every few seconds while a build waits out the gate's wait for more architectures.
    if (version === seen && Date.now() - lastRound < Math.min(30_000, Math.max(1000, options.gateWaitMs / 4))) return;
    seen = version;
    lastRound = Date.now();
    const { tested, promoted } = await advancePipeline(store, hooks, options.gateWaitMs, stopping.signal);
    if (tested.length || promoted.length) store.log.info('pipeline round', { tested: tested.length, promoted: promoted.length });
  };
  const timer = setInterval(() => {
    running ??= tick()
      .catch((err: unknown) => {
        if (!stopping.signal.aborted) store.log.error('the publishing pipeline failed', { err });
      })
      .finally(() => (running = undefined));
  }, options.pollMs ?? 1000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      // A hook running now is killed: stopping never waits out its timeout.
      stopping.abort(new AppError(ErrorCodes.unavailable, 'the server is stopping'));
      await running;
    },
  };
}
