// Who may call a route. Routes declare an access level; the router asks this policy who the
// request is (identify) and whether that principal may call a route of that level (check),
// once, before the handler runs. See README "Security model".
//
// Principals:
//   operator: an operator token (--token, or a named one from `booty tokens add`), a dashboard
//             session made from one, or, while the server has no operator token at all, a
//             request from loopback (this host). --insecure-open: everyone.
//   agent:    a per-machine agent credential (agent-credential.ts): speaks for that machine only.
//   anonymous: anyone else (firmware, a stranger on the provisioning network).

import type { IncomingMessage } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { agentCredential, agentCredentialMac, looksLikeAgentCredential } from '../trust/agent-credential.ts';
import type { OperatorTokens } from '../trust/operator-tokens.ts';
import { tokenHash } from '../trust/operator-tokens.ts';
import { cookieOf, SESSION_COOKIE, SessionCookies } from '../trust/session-cookie.ts';
import { HttpError } from './http-error.ts';
import { SAFE_METHODS, sameOrigin } from './cross-site.ts';
import { remoteOf } from './respond.ts';

/**
 * Who may call a route.
 *   public:   anyone (firmware and agents fetch before they can authenticate: iPXE, boot files,
 *             images, an agent's own action; the dashboard's static files)
 *   agent:    one machine's agent (events, capture uploads) or an operator; the route says
 *             which machine the request speaks for (Route.agentMac), another machine's
 *             credential is refused with 403
 *   fleet:    any machine's agent, or an operator: what every agent of the fleet may read and
 *             that names no machine (an image's BitTorrent metainfo, which only peers need)
 *   operator: the inventory, images, logs, runs, the live stream, audit, server state
 *   metrics:  /metrics: public or operator, as the server is configured (--metrics)
 */
export type Access = 'public' | 'agent' | 'fleet' | 'operator' | 'metrics';

export type Principal =
  | { kind: 'operator'; name: string }
  | { kind: 'agent'; mac: string }
  /** `rejected`: a credential was presented and is not valid (said in the 401) */
  | { kind: 'anonymous'; rejected?: string };

export interface TrustOptions {
  secret: Buffer;
  /** named operator tokens (booty.db) */
  tokens?: OperatorTokens;
  /** the unnamed operator token of --token / BOOTY_TOKEN */
  token?: string;
  /** everyone is an operator (labs; warned about at start) */
  insecureOpen?: boolean;
  /** who may read /metrics (default public: scrapers rarely carry tokens, and it names no machine) */
  metrics?: 'public' | 'operator';
  /** how long a dashboard login lasts (default 12 h) */
  sessionTtlMs?: number;
}

const CREATE_TOKEN = 'booty tokens add NAME --data DIR';

/** 127.0.0.0/8, ::1 and their IPv4-mapped form: this host. */
export function isLoopback(address: string): boolean {
  return /^(::ffff:)?127\./.test(address) || address === '::1';
}

/**
 * Does the request's Host name this host (localhost, 127.x, [::1])? A page whose DNS name was
 * rebound to 127.0.0.1 reaches loopback from the operator's browser, but with its own name in
 * Host: it must not get loopback's authority.
 */
function namesThisHost(req: IncomingMessage): boolean {
  const host = req.headers.host;
  if (host === undefined) return true;
  const name = host.replace(/:\d+$/, '').toLowerCase();
  return name === 'localhost' || name === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

export class TrustPolicy {
  readonly #o: TrustOptions;
  readonly #tokenHash: Buffer | undefined;
  readonly sessions: SessionCookies;

  constructor(o: TrustOptions) {
    this.#o = o;
    // compared as hashes: equal lengths, so the comparison leaks nothing about the token's length
    this.#tokenHash = o.token === undefined ? undefined : Buffer.from(tokenHash(o.token), 'hex');
    this.sessions = new SessionCookies(o.secret, (hash) => this.#operatorByHash(hash), o.sessionTtlMs);
  }

  get insecureOpen(): boolean { return this.#o.insecureOpen === true; }

  /** Is any operator token configured (--token or a named one)? Without, operators are loopback only. */
  async hasOperatorToken(): Promise<boolean> { return this.#o.token !== undefined || (await this.#o.tokens?.count() ?? 0) > 0; }

  /** The credential of machine `mac` (its iPXE script carries it as booty.token=). */
  credentialFor(mac: string): string { return agentCredential(this.#o.secret, mac); }

  /** The operator a bearer token belongs to (its name), or undefined. */
  operatorTokenName(token: string): Promise<string | undefined> { return this.#operatorByHash(tokenHash(token)); }

  async #operatorByHash(hash: string): Promise<string | undefined> {
    if (this.#tokenHash !== undefined && timingSafeEqual(Buffer.from(hash, 'hex'), this.#tokenHash)) return 'server --token';
    return this.#o.tokens?.nameOfHash(hash);
  }

  /** A dashboard login with `token`: the session cookie's value, or undefined when it is no operator token. */
  async login(token: string): Promise<string | undefined> {
    return await this.operatorTokenName(token) === undefined ? undefined : this.sessions.issue(tokenHash(token));
  }

  async identify(req: IncomingMessage): Promise<Principal> {
    if (this.#o.insecureOpen === true) return { kind: 'operator', name: 'insecure-open' };
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      if (m === null) return { kind: 'anonymous', rejected: 'the Authorization header must be "Bearer <token>"' };
      const mac = agentCredentialMac(this.#o.secret, m[1]);
      if (mac !== undefined) return { kind: 'agent', mac };
      const name = await this.operatorTokenName(m[1]);
      if (name !== undefined) return { kind: 'operator', name };
      return {
        kind: 'anonymous',
        rejected: looksLikeAgentCredential(m[1])
          ? 'this agent credential is not valid (the server\'s secret changed since it was issued?); boot the machine through /ipxe/<mac> again or get its credential with GET /api/machines/<mac>/credential'
          : 'this bearer token is not an operator token of this server (revoked, mistyped, or for another server)',
      };
    }
    const cookie = cookieOf(req, SESSION_COOKIE);
    if (cookie !== undefined) {
      const session = await this.sessions.check(cookie);
      if ('rejected' in session) return { kind: 'anonymous', rejected: session.rejected };
      // a cookie is sent by the browser on its own: a change needs proof the page is ours
      const origin = req.headers.origin;
      if (!SAFE_METHODS.has(req.method ?? 'GET') && (origin === undefined || !sameOrigin(origin, req))) {
        return { kind: 'anonymous', rejected: 'a change made with a dashboard login must come from the dashboard (same Origin)' };
      }
      return { kind: 'operator', name: session.name };
    }
    if (!await this.hasOperatorToken() && isLoopback(remoteOf(req)) && namesThisHost(req)) return { kind: 'operator', name: 'loopback' };
    return { kind: 'anonymous' };
  }

  /**
   * Refuse (throw 401 or 403) unless `p` may call a route of level `access`; `agentMac` is the
   * machine an agent route speaks for; 'deferred': only the body names it, and the handler
   * checks it (refuseOtherMachine).
   */
  async check(access: Access, p: Principal, agentMac: string | undefined | 'deferred'): Promise<void> {
    const level = access === 'metrics' ? (this.#o.metrics ?? 'public') : access;
    if (level === 'public' || p.kind === 'operator') return;
    if (p.kind === 'anonymous') throw await this.#unauthorized(level, p.rejected);
    if (level === 'operator') throw new HttpError(403, `this is the agent credential of ${p.mac}: it may only report and upload for that machine; this needs an operator token`);
    if (level === 'fleet') return;
    if (agentMac !== 'deferred') refuseOtherMachine(p, agentMac);
  }

  async #unauthorized(level: 'agent' | 'fleet' | 'operator', rejected: string | undefined): Promise<HttpError> {
    const headers = { 'WWW-Authenticate': 'Bearer realm="booty"' };
    if (rejected !== undefined) return new HttpError(401, `${rejected}; send "Authorization: Bearer <operator token or this machine's credential>"`, { headers });
    if (!await this.hasOperatorToken()) {
      return new HttpError(401, level !== 'operator'
        ? 'agents authenticate with their machine\'s credential ("Authorization: Bearer <credential>", booty.token= from /ipxe/<mac>)'
        : `this server has no operator token yet, so operator requests are accepted from this host only; create one on the server with "${CREATE_TOKEN}" and send "Authorization: Bearer <token>"`, { headers });
    }
    return new HttpError(401, level !== 'operator'
      ? 'this needs the machine\'s agent credential or an operator token ("Authorization: Bearer <token>")'
      : 'this needs an operator token: "Authorization: Bearer <token>" (or log in to the dashboard)', { headers });
  }
}

/** An agent speaks for its own machine only: 403 naming both when `mac` is another one. */
export function refuseOtherMachine(p: Principal, mac: string | undefined): void {
  if (p.kind !== 'agent') return;
  if (mac === undefined) throw new HttpError(403, `this is the agent credential of ${p.mac}, and this request names no machine it may speak for`);
  if (mac !== p.mac) throw new HttpError(403, `this credential is for ${p.mac}, not ${mac}`);
}

export { CREATE_TOKEN };
