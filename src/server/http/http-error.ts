// The one error type an HTTP answer is made of, and the one place where other errors (domain
// errors of the stores, parser errors, errno codes) become answers. Handlers and stores throw;
// app.ts catches once and answers with what httpErrorOf() says.

import { isBootyError } from '../../util/errors.ts';
import { MultipartError } from '../multipart.ts';

export class HttpError extends Error {
  readonly status: number;
  /** extra response headers for this refusal (e.g. Retry-After, WWW-Authenticate) */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** a stable word for scripts and logs; the message is for people */
  readonly code: string | undefined;
  constructor(status: number, message: string, opts: { headers?: Record<string, string>; code?: string } = {}) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.headers = opts.headers;
    this.code = opts.code;
  }
}

/** `code` of the HttpError httpErrorOf() makes of an unexpected error (the caller logs its stack). */
export const INTERNAL = 'internal';

/**
 * What to answer for an error thrown while handling a request; undefined when the client went
 * away mid-body (nothing to answer: the store already removed what it had started).
 */
export function httpErrorOf(e: unknown): HttpError | undefined {
  if (e instanceof HttpError) return e;
  if (e instanceof MultipartError) return new HttpError(400, `multipart upload: ${e.message}`);
  if (isBootyError(e)) return new HttpError(500, e.message);
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (e as Error).message === 'aborted') return undefined;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new HttpError(507, 'the server\'s data disk is full; nothing was stored');
  return new HttpError(500, `internal error: ${(e as Error).message}`, { code: INTERNAL });
}
