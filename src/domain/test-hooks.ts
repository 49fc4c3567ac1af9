/**
 * Test hooks (`test_hooks:` in config.yaml): commands run for an image before it is published,
 * each with a name, a timeout and a number of retries; exit 0 passes. Their results are kept
 * (meta `TestResultStore`) and shown (`wharf image tests IMAGE`). Pure: the runner is
 * pipeline/hooks.ts.
 */
import { AppError, ErrorCodes } from '../errors.ts';
import { parseDuration } from './duration.ts';

export interface TestHook {
  name: string;
  /** Run by `sh -c`, with the image in WHARF_* variables. */
  command: string;
  timeoutSeconds: number;
  /** Further attempts after a failure (0: one attempt). */
  retries: number;
}

/** One attempt of one hook on one image, as the store keeps it. */
export interface TestResult {
  fingerprint: string;
  hook: string;
  /** 1 for the first attempt. */
  attempt: number;
  outcome: 'passed' | 'failed' | 'timed out';
  /** The exit status (null when it was killed). */
  exitCode: number | null;
  startedAt: string;
  durationMs: number;
  /** The end of what it printed (stdout and stderr, interleaved), at most `logBytes`. */
  log: string;
}

export const logBytes = 16 * 1024;
const defaultTimeoutSeconds = 600;

export function checkTestHooks(value: unknown, origin: string): TestHook[] {
  const bad = (what: string) =>
    new AppError(ErrorCodes.config, `${origin}: ${what}`, { hint: 'e.g. test_hooks: [{ name: boots, command: "wharf test $WHARF_IMAGE_FINGERPRINT", timeout: 10m, retries: 1 }]' });
  if (!Array.isArray(value)) throw bad('must be a list of hooks');
  const names = new Set<string>();
  return value.map((entry, i) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw bad(`entry ${i + 1} must be a mapping (name, command, timeout, retries)`);
    const { name, command, timeout, retries, ...rest } = entry as Record<string, unknown>;
    const unknown = Object.keys(rest)[0];
    if (unknown !== undefined) throw bad(`entry ${i + 1}: unknown key "${unknown}"`);
    if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9_.-]{0,62}$/i.test(name)) throw bad(`entry ${i + 1}: name must be a word of letters, digits, ".", "_" or "-"`);
    if (names.has(name)) throw bad(`two hooks are named ${name}`);
    names.add(name);
    if (typeof command !== 'string' || !command.trim()) throw bad(`${name}: command must be a non-empty string`);
    let timeoutSeconds = defaultTimeoutSeconds;
    if (timeout !== undefined) {
      try {
        timeoutSeconds = parseDuration(String(timeout));
      } catch {
        throw bad(`${name}: timeout ${JSON.stringify(timeout)} is not a duration (such as 90s, 10m)`);
      }
      if (timeoutSeconds <= 0) throw bad(`${name}: timeout must be positive`);
    }
    const tries = retries === undefined ? 0 : Number(retries);
    if (!Number.isInteger(tries) || tries < 0 || tries > 10) throw bad(`${name}: retries must be a whole number from 0 to 10`);
    return { name, command, timeoutSeconds, retries: tries };
  });
}
