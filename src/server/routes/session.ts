// Dashboard logins: POST /api/login {"token": "..."} sets the session cookie
// (trust/session-cookie.ts), POST /api/logout deletes it, GET /api/session says who the browser
// is (the dashboard shows its login form when nobody). Public: they are how one becomes an
// operator; they change nothing but the caller's own cookie.

import { HttpError } from '../http/http-error.ts';
import { readJson } from '../http/request.ts';
import { sendJson } from '../http/respond.ts';
import { sessionSetCookie } from '../trust/session-cookie.ts';
import type { AppRequest, AppRoute } from './context.ts';

async function login({ app, req, res }: AppRequest): Promise<void> {
  const body = await readJson(req, 4096) as { token?: unknown };
  if (typeof body !== 'object' || body === null || typeof body.token !== 'string' || body.token === '') throw new HttpError(400, 'body must be {"token": "<operator token>"}');
  const cookie = await app.trust.login(body.token.trim());
  if (cookie === undefined) throw new HttpError(401, 'that is not an operator token of this server (make one on the server: booty tokens add NAME --data DIR)');
  sendJson(res, 200, { operator: await app.trust.operatorTokenName(body.token.trim()), expiresInSeconds: Math.floor(app.trust.sessions.ttlMs / 1000) },
    { 'Set-Cookie': sessionSetCookie(cookie, app.trust.sessions.ttlMs, app.tlsCert !== undefined), 'Cache-Control': 'no-store' });
}

export const sessionRoutes: AppRoute[] = [
  { method: 'POST', path: '/api/login', access: 'public', handle: login },
  {
    method: 'POST', path: '/api/logout', access: 'public',
    handle: ({ app, res }) => sendJson(res, 200, { ok: true }, { 'Set-Cookie': sessionSetCookie('', 0, app.tlsCert !== undefined), 'Cache-Control': 'no-store' }),
  },
  {
    method: 'GET', path: '/api/session', access: 'public',
    handle: ({ res, principal }) => sendJson(res, 200, {
      operator: principal.kind === 'operator' ? principal.name : null,
      // why not, when not: an expired or revoked login, said on the login form
      ...(principal.kind === 'anonymous' && principal.rejected !== undefined ? { problem: principal.rejected } : {}),
    }, { 'Cache-Control': 'no-store' }),
  },
];
