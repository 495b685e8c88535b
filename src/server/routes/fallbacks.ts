// The end of the table: whatever no route took is a 404 (under /api/ the message says so, as
// it always did). Routes that exist only under a condition (the dashboard, the TLS certificate)
// answer the same 404 when it does not hold.

import { HttpError } from '../http/http-error.ts';
import type { AppRequest, AppRoute } from './context.ts';

export function notFound(r: AppRequest, what: 'route' | 'API route' = 'route'): HttpError {
  return new HttpError(404, `no ${what} ${r.req.method ?? 'GET'} ${r.url.pathname}`);
}

/** After every /api/ route. */
export const apiNotFoundRoute: AppRoute = { method: '*', path: '/api/*', access: 'public', handle: (r) => { throw notFound(r, 'API route'); } };

/** The last route of the table: it matches everything. */
export const notFoundRoute: AppRoute = { method: '*', path: '/*', access: 'public', handle: (r) => { throw notFound(r); } };
