/**
 * One error type for the whole program. Storage and core raise AppError with a stable code;
 * the HTTP layer and the CLI each map codes to their own world (status codes, exit codes).
 */
export const ErrorCodes = {
  invalidArgument: 'invalid_argument',
  notFound: 'not_found',
  conflict: 'conflict',
  invalidImage: 'invalid_image',
  ambiguous: 'ambiguous',
  integrity: 'integrity',
  forbidden: 'forbidden',
  tooLarge: 'too_large',
  unavailable: 'unavailable',
  /** Someone else holds what this needs for a moment (a blob being collected): try again. */
  busy: 'busy',
  /** The disk (or the database on it) is full: nothing was changed. */
  diskFull: 'disk_full',
  config: 'config',
  internal: 'internal',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.hint = options.hint;
  }
}

export function isAppError(err: unknown, code?: ErrorCode): err is AppError {
  return err instanceof AppError && (code === undefined || err.code === code);
}

export const invalidImage = (message: string, hint?: string) =>
  new AppError(ErrorCodes.invalidImage, message, hint === undefined ? {} : { hint });

export const notFound = (message: string) => new AppError(ErrorCodes.notFound, message);
