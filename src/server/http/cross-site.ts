// Cross-site request forgery: a web page the operator visits must not change this server
// through the operator's browser (its dashboard cookie, or its place on loopback). Browsers send
// Origin with every request that changes things, and cannot set Authorization or a JSON
// Content-Type across sites without a CORS preflight booty never grants. So: a state-changing
// request that carries an Origin must come from this server's own origin, and JSON bodies must
// say Content-Type: application/json (request.ts readJson). Agents and the CLI send no Origin.

import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error.ts';

export const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Is `origin` (an Origin header) this server, as the request's Host names it? */
export function sameOrigin(origin: string, req: IncomingMessage): boolean {
  let host: string;
  try { host = new URL(origin).host; } catch { return false; }
  return req.headers.host !== undefined && host === req.headers.host.toLowerCase();
}

/** Refuse (403) a state-changing request sent by another site's page. */
export function refuseCrossSite(req: IncomingMessage): void {
  if (SAFE_METHODS.has(req.method ?? 'GET')) return;
  const origin = req.headers.origin;
  if (origin === undefined || sameOrigin(origin, req)) return;
  throw new HttpError(403, `cross-site request refused: it comes from a page of ${JSON.stringify(origin.slice(0, 100))}, not from this server; booty changes only on requests from its own dashboard, the CLI or an API client (which send no foreign Origin)`);
}
