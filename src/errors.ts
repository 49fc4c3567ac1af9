/**
 * One error type for the whole program, and one catalogue of its codes. Storage and core raise
 * AppError with a stable code, never a status: what a code means to an HTTP client (its status)
 * and to a shell (the CLI's exit status) is written once, in `errorCatalogue` below, and
 * `src/http/errors.ts` and `src/cli/main.ts` read it from there.
 *
 * Exit statuses follow sysexits.h (`man sysexits`), so a script can tell "you asked wrongly"
 * (64, 65), "it is not there" (66), "try again later" (75) and "the other server failed" (69,
 * 76) apart; 1 is never used for an AppError. HTTP statuses put the fault where it lies: 4xx
 * when the client's request or upload is wrong, 5xx when wharf or a server it fetched from is.
 */
export const ErrorCodes = {
  invalidArgument: 'invalid_argument',
  notFound: 'not_found',
  conflict: 'conflict',
  invalidImage: 'invalid_image',
  ambiguous: 'ambiguous',
  integrity: 'integrity',
  /** An upstream file that differs from its index, or an upstream image that is not valid. */
  upstreamCorrupt: 'upstream_corrupt',
  forbidden: 'forbidden',
  /** No credentials, or ones that do not hold: the caller is asked to authenticate (a registry's challenge). */
  unauthorized: 'unauthorized',
  tooLarge: 'too_large',
  /** A Range that selects no byte of the file. */
  rangeNotSatisfiable: 'range_not_satisfiable',
  /** An edit sent with If-Match by a client that read an older version of the image. */
  preconditionFailed: 'precondition_failed',
  /** Another server could not be reached, stalled or answered an error. */
  unavailable: 'unavailable',
  /** Something wharf does not do (yet). */
  notImplemented: 'not_implemented',
  /** Someone else holds what this needs for a moment (a blob being collected): try again. */
  busy: 'busy',
  /** The disk (or the database on it) is full: nothing was changed. */
  diskFull: 'disk_full',
  /** A database file of the data directory is damaged, or is not a database at all. */
  storeCorrupt: 'store_corrupt',
  config: 'config',
  internal: 'internal',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface ErrorEntry {
  /** The HTTP status of a response carrying this error. */
  status: number;
  /** The exit status of a CLI command failing with it. */
  exit: number;
  meaning: string;
}

/** The catalogue: the only map from codes to HTTP statuses and exit statuses. */
export const errorCatalogue: Readonly<Record<ErrorCode, ErrorEntry>> = {
  invalid_argument: { status: 400, exit: 64, meaning: 'a bad name, filter, body, duration or upload; a command line that does not parse' },
  ambiguous: { status: 400, exit: 64, meaning: 'a fingerprint prefix that matches several images (or trusted certificates)' },
  not_found: { status: 404, exit: 66, meaning: 'no such image, alias, file, remote, mirror or operation; also anything hidden from the caller' },
  conflict: { status: 409, exit: 73, meaning: 'the image, alias, remote or mirror exists already; a secret already downloading' },
  invalid_image: { status: 400, exit: 65, meaning: 'a file given or uploaded is not an image clients would accept' },
  integrity: { status: 400, exit: 65, meaning: 'bytes differ from what the client promised (an upload\'s fingerprint); image verify found stored bytes changed' },
  too_large: { status: 413, exit: 65, meaning: 'an upload or pulled image over max_upload_size' },
  range_not_satisfiable: { status: 416, exit: 64, meaning: 'a Range header that selects no byte of the file' },
  precondition_failed: { status: 412, exit: 75, meaning: 'an edit whose If-Match names an older version of the image (ETag doesn\'t match): read it again' },
  forbidden: { status: 403, exit: 77, meaning: 'the caller is not trusted over the LXD API; a bad join token' },
  unauthorized: { status: 401, exit: 77, meaning: 'the OCI registry wants credentials (none given, or ones that do not hold)' },
  upstream_corrupt: { status: 502, exit: 76, meaning: 'an upstream file whose size or sha256 differs from its index, or an upstream image that is not valid' },
  unavailable: { status: 502, exit: 69, meaning: 'an upstream server cannot be reached, stalls or answers an error' },
  not_implemented: { status: 501, exit: 69, meaning: 'a request wharf does not serve (yet), such as a pull over simplestreams' },
  busy: { status: 503, exit: 75, meaning: 'a file is being collected this moment: try again' },
  disk_full: { status: 507, exit: 74, meaning: 'the disk of the blob store or the database is full; nothing changed' },
  store_corrupt: { status: 500, exit: 74, meaning: 'a database file of the data directory is damaged or is not a database' },
  config: { status: 500, exit: 78, meaning: 'a bad setting or certificate' },
  internal: { status: 500, exit: 70, meaning: 'a failure inside wharf (the hashing thread died); also any error that is not an AppError' },
};

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

/**
 * The catalogue entry of any error: an AppError's own; anything else is `internal`, except
 * that a framework error with a 4xx/5xx `statusCode` (Fastify's own: a malformed URL, a body
 * too large to parse) keeps that status.
 */
export function errorEntry(err: unknown): ErrorEntry {
  if (isAppError(err)) return errorCatalogue[err.code];
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  const internal = errorCatalogue.internal;
  return typeof status === 'number' && status >= 400 && status < 600 ? { ...internal, status } : internal;
}

/**
 * The same error, as an upstream's fault: what describes the bytes (`integrity`,
 * `invalid_image`, and `invalid_argument` where the caller knows the bytes came from another
 * server) becomes `upstream_corrupt`, keeping the message. Anything else is returned as it is.
 */
export function asUpstreamFault(err: unknown, codes: readonly ErrorCode[] = [ErrorCodes.integrity, ErrorCodes.invalidImage]): unknown {
  if (!(err instanceof AppError) || !codes.includes(err.code)) return err;
  return new AppError(ErrorCodes.upstreamCorrupt, err.message, { ...(err.hint ? { hint: err.hint } : {}), cause: err });
}

export const invalidImage = (message: string, hint?: string) =>
  new AppError(ErrorCodes.invalidImage, message, hint === undefined ? {} : { hint });

export const notFound = (message: string) => new AppError(ErrorCodes.notFound, message);

/** A write made from a read of something another writer has changed since: read it again. */
export const changedMeanwhile = (what: string) => new AppError(ErrorCodes.preconditionFailed, `${what} was changed meanwhile`, { hint: 'Read it again, then make the change.' });
