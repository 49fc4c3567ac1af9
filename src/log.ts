/** Structured JSON lines on stderr; a child logger carries fields such as a request id. */
import { redactSecrets } from './domain/redact.ts';

export type Level = 'debug' | 'info' | 'warn' | 'error';
/** A logger's threshold; 'silent' writes nothing (tests), and serving processes it starts inherit it. */
export type Threshold = Level | 'silent';
const rank: Record<Threshold, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
  /** Whether a line at `level` would be written (to skip preparing one that would not). */
  enabled(level: Level): boolean;
  readonly threshold: Threshold;
  /** Changes the threshold of this logger and of every logger related to it (SIGHUP, config). */
  setThreshold(level: Threshold): void;
}

export function createLogger(
  options: { level?: Threshold; base?: Record<string, unknown>; write?: (line: string) => void } = {},
): Logger {
  // One threshold shared by a logger and all its children, so a change reaches every one.
  return loggerWith({ level: options.level ?? 'info' }, options.base ?? {}, options.write ?? ((line: string) => process.stderr.write(line)));
}

function loggerWith(shared: { level: Threshold }, base: Record<string, unknown>, write: (line: string) => void): Logger {
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (rank[level] < rank[shared.level]) return;
    const record: Record<string, unknown> = { time: new Date().toISOString(), level, msg, ...base, ...fields };
    if (record.err instanceof Error) record.err = { message: record.err.message, stack: record.err.stack };
    // No line carries a URL's credentials, whichever message or error brought them.
    write(redactSecrets(JSON.stringify(record)) + '\n');
  };
  return {
    get threshold() {
      return shared.level;
    },
    setThreshold: (level) => void (shared.level = level),
    enabled: (level) => rank[level] >= rank[shared.level],
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => loggerWith(shared, { ...base, ...fields }, write),
  };
}

export const silentLogger: Logger = createLogger({ level: 'silent', write: () => {} });
