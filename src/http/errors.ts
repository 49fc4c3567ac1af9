/** The single map from AppError codes to HTTP status. */
import { isAppError, type ErrorCode } from '../errors.ts';

const statusOf: Record<ErrorCode, number> = {
  invalid_argument: 400,
  not_found: 404,
  conflict: 409,
  invalid_image: 400,
  ambiguous: 400,
  integrity: 400,
  forbidden: 403,
  too_large: 413,
  unavailable: 503,
  busy: 503,
  disk_full: 507,
  config: 500,
  internal: 500,
};

export function httpStatus(err: unknown): number {
  if (isAppError(err)) return statusOf[err.code];
  const status = (err as { statusCode?: number }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}
