/**
 * Running the test hooks (domain/test-hooks.ts) on one image: its files exported once into a
 * directory of their own, each hook run by `sh -c` with the image in WHARF_* variables, again
 * after a failure as many times as it has retries, killed (with what it started) past its
 * timeout. Every attempt is recorded (meta `TestResultStore`), passed or not.
 *
 * What a hook gets: WHARF_IMAGE_FINGERPRINT, WHARF_IMAGE_TYPE (container, virtual-machine),
 * WHARF_IMAGE_PRODUCT (os:release:arch:variant), WHARF_IMAGE_VERSION (its serial),
 * WHARF_IMAGE_PROPERTIES (JSON), WHARF_IMAGE_DIR, and the files' paths: WHARF_IMAGE_METADATA and
 * WHARF_IMAGE_ROOTFS for a split image, WHARF_IMAGE_UNIFIED for a unified one.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Image } from '../domain/image.ts';
import { productOf, serialOf } from '../domain/product.ts';
import { logBytes, type TestHook, type TestResult } from '../domain/test-hooks.ts';
import { exportImage, exportedFiles } from '../core/images.ts';
import type { Store } from '../core/context.ts';

/**
 * Runs every hook on `image` and records each attempt; the results of the last attempts, one per
 * hook. `signal` (the server stopping) kills a running hook and rejects with its reason; the
 * attempt it cut is not recorded.
 */
export async function runTestHooks(store: Store, image: Image, hooks: TestHook[], signal?: AbortSignal): Promise<TestResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-hooks-'));
  try {
    await exportImage(store, image.fingerprint, dir);
    const files = exportedFiles(image);
    const path = (role: string) => join(dir, files.find((f) => f.role === role)!.name);
    const env: Record<string, string> = {
      WHARF_IMAGE_FINGERPRINT: image.fingerprint,
      WHARF_IMAGE_TYPE: image.type,
      WHARF_IMAGE_PRODUCT: productOf(image, store.releaseNames).key,
      WHARF_IMAGE_VERSION: serialOf(image),
      WHARF_IMAGE_PROPERTIES: JSON.stringify(image.properties),
      WHARF_IMAGE_DIR: dir,
      ...(image.rootfs ? { WHARF_IMAGE_METADATA: path('metadata'), WHARF_IMAGE_ROOTFS: path('rootfs') } : { WHARF_IMAGE_UNIFIED: path('unified') }),
    };
    const last: TestResult[] = [];
    for (const hook of hooks) {
      for (let attempt = 1; attempt <= hook.retries + 1; attempt++) {
        signal?.throwIfAborted();
        const result = { fingerprint: image.fingerprint, hook: hook.name, attempt, ...(await runOnce(hook, env, dir, signal)) };
        signal?.throwIfAborted();
        await store.meta.addTestResult(result);
        if (result.outcome === 'passed' || attempt === hook.retries + 1) {
          last.push(result);
          break;
        }
      }
    }
    return last;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function runOnce(hook: TestHook, env: Record<string, string>, cwd: string, signal?: AbortSignal): Promise<Omit<TestResult, 'fingerprint' | 'hook' | 'attempt'>> {
  const startedAt = new Date();
  return new Promise((resolve) => {
    // Its own process group, so that a timeout kills what the hook started too.
    const child = spawn('sh', ['-c', hook.command], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let log = '';
    const keep = (chunk: Buffer) => (log = (log + chunk.toString('utf8')).slice(-logBytes));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const killGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, hook.timeoutSeconds * 1000);
    signal?.addEventListener('abort', killGroup, { once: true });
    const done = (code: number | null, failure?: string) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', killGroup);
      if (failure) log = `${log}${failure}\n`.slice(-logBytes);
      const outcome = timedOut ? 'timed out' : code === 0 ? 'passed' : 'failed';
      resolve({ outcome, exitCode: timedOut ? null : code, startedAt: startedAt.toISOString(), durationMs: Date.now() - startedAt.getTime(), log });
    };
    child.on('error', (err) => done(null, `the hook could not run: ${err.message}`));
    child.on('close', (code) => done(code));
  });
}
