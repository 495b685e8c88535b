// The router: a request's method and path segments are matched against an ordered table of
// routes (routes/index.ts); the first match wins. Each route declares who may call it
// (access.ts), and the router enforces that ONCE, after the path parameters were checked and
// before the handler runs: handlers never look at credentials.
//
// Patterns: "/api/machines/:mac/runs". A segment is a literal, a parameter ":x" (one segment,
// percent-decoded, possibly empty) or a last "*" (zero or more remaining segments). Some
// parameters are checked by name before anything else (PARAM_CHECKS: ":mac" must be a MAC,
// ":name" an acceptable image name), so a bad one is a 400 whoever asks, as it always was; an
// empty ":name" is no image at all, and the route does not match.
//
// Method: "GET" also answers HEAD (unless the route says head: false); "*" matches any method
// (the table's fallbacks that answer 405 or 404 with a route-specific message).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Access, Principal, TrustPolicy } from './access.ts';
import { checkedImageName, macOrThrow } from './request.ts';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | '*';

export interface RouteRequest<Ctx> {
  req: IncomingMessage;
  res: ServerResponse;
  /** the query string's parameters (the path is routed as sent, see decodeSegments) */
  url: URL;
  /** path parameters, decoded and (for PARAM_CHECKS names) checked/normalized */
  params: Readonly<Record<string, string>>;
  /** what a trailing "*" matched */
  rest: readonly string[];
  app: Ctx;
  /** who is asking (access.ts): handlers use it only to narrow what they serve (post.files) or,
   *  for agent routes whose machine the body names, to check it (refuseOtherMachine) */
  principal: Principal;
}

export interface Route<Ctx> {
  method: Method;
  path: string;
  access: Access;
  /** false: GET only, HEAD is not answered by this route */
  head?: false;
  /** the route matches only when the query string has this parameter (POST /images/<name>?commit=<id>) */
  query?: string;
  /**
   * agent routes: the machine the request speaks for (path, upload session, capture target);
   * an agent credential of another machine is refused with 403 before the handler runs.
   * 'body': only the body names it (BOOTy's multipart file name, a new upload session's image),
   * and the handler checks it with refuseOtherMachine once read.
   */
  agentMac?: ((r: RouteRequest<Ctx>) => string | undefined | Promise<string | undefined>) | 'body';
  handle(r: RouteRequest<Ctx>): Promise<void> | void;
}

/**
 * Parameters checked by name before the access check: a bad one is refused with 400 (thrown);
 * undefined declines, and the next route is tried.
 */
const PARAM_CHECKS: Readonly<Record<string, (raw: string) => string | undefined>> = {
  mac: macOrThrow,
  name: (raw) => raw === '' ? undefined : checkedImageName(raw),
};

interface Compiled<Ctx> { route: Route<Ctx>; segs: string[]; star: boolean }

export interface Match<Ctx> { route: Route<Ctx>; params: Record<string, string>; rest: string[] }

export class Router<Ctx> {
  readonly #routes: Compiled<Ctx>[];

  constructor(routes: readonly Route<Ctx>[]) {
    this.#routes = routes.map((route) => {
      const segs = route.path.split('/').slice(1);
      const star = segs.at(-1) === '*';
      if (star) segs.pop();
      if (segs.some((s) => s === '*')) throw new Error(`route ${route.path}: "*" only at the end`);
      return { route, segs, star };
    });
  }

  /** The first route matching the method, query and decoded path segments, its parameters checked. */
  match(method: string, url: URL, seg: readonly string[]): Match<Ctx> | undefined {
    for (const c of this.#routes) {
      if (!methodMatches(c.route, method)) continue;
      if (c.route.query !== undefined && !url.searchParams.has(c.route.query)) continue;
      const params = paramsOf(c, seg);
      if (params !== undefined) return { route: c.route, params, rest: seg.slice(c.segs.length) };
    }
    return undefined;
  }
}

function paramsOf<Ctx>(c: Compiled<Ctx>, seg: readonly string[]): Record<string, string> | undefined {
  if (c.star ? seg.length < c.segs.length : seg.length !== c.segs.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < c.segs.length; i++) {
    const p = c.segs[i];
    if (p.startsWith(':')) params[p.slice(1)] = seg[i];
    else if (p !== seg[i]) return undefined;
  }
  for (const [k, v] of Object.entries(params)) {
    const check = PARAM_CHECKS[k];
    if (check === undefined) continue;
    const checked = check(v);
    if (checked === undefined) return undefined;
    params[k] = checked;
  }
  return params;
}

function methodMatches<Ctx>(r: Route<Ctx>, method: string): boolean {
  return r.method === '*' || r.method === method || (method === 'HEAD' && r.method === 'GET' && r.head !== false);
}

/** Run the matched route: the access check first, then its handler. Returns who asked (for the audit log). */
export async function dispatch<Ctx>(m: Match<Ctx>, r: Omit<RouteRequest<Ctx>, 'params' | 'rest' | 'principal'>, policy: TrustPolicy): Promise<Principal> {
  const principal = await policy.identify(r.req);
  const request: RouteRequest<Ctx> = { ...r, params: m.params, rest: m.rest, principal };
  const agentMac = m.route.agentMac;
  // an agent route without agentMac would let any machine speak for any other: refuse, loudly
  if (m.route.access === 'agent' && agentMac === undefined) throw new Error(`agent route ${m.route.path} declares no agentMac`);
  const speaksFor = principal.kind !== 'agent' || m.route.access !== 'agent' ? undefined
    : agentMac === 'body' ? 'deferred' as const : await agentMac!(request);
  await policy.check(m.route.access, principal, speaksFor);
  await m.route.handle(request);
  return principal;
}
