/** Durations as the operator writes them: a whole number with an optional unit, s by default. */
import { AppError, ErrorCodes } from '../errors.ts';

const unitSeconds = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** "90", "90s", "15m", "6h", "2d" -> seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)\s*([smhd])?$/.exec(text.trim());
  if (!m) throw new AppError(ErrorCodes.invalidArgument, `Invalid duration "${text}"`, { hint: 'Use e.g. 90s, 15m, 6h or 2d.' });
  return Number(m[1]) * unitSeconds[(m[2] ?? 's') as keyof typeof unitSeconds];
}
