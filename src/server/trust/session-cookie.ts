// Dashboard logins: an operator types a token once, and the browser keeps a session cookie
// (HttpOnly: page scripts cannot read it; SameSite=Strict: other sites' requests do not carry
// it). The cookie holds no token: "<expires ms>.<sha256 of the token>.<HMAC of both with the
// server's secret>". It stops working when it expires, when that token is revoked, or when the
// server's secret changes. Logging out deletes it from the browser.

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const SESSION_COOKIE = 'booty_session';
export const DEFAULT_SESSION_TTL_MS = 12 * 3600 * 1000;

const PURPOSE = 'booty-dashboard-session-v1:';

export type SessionCheck = { name: string } | { rejected: string };

export class SessionCookies {
  readonly #secret: Buffer;
  readonly #operatorByHash: (hash: string) => Promise<string | undefined>;
  readonly ttlMs: number;

  /** `operatorByHash`: the name of the operator token with this sha256 (hex), if it still exists */
  constructor(secret: Buffer, operatorByHash: (hash: string) => Promise<string | undefined>, ttlMs = DEFAULT_SESSION_TTL_MS) {
    this.#secret = secret;
    this.#operatorByHash = operatorByHash;
    this.ttlMs = ttlMs;
  }

  #mac(text: string): Buffer { return createHmac('sha256', this.#secret).update(PURPOSE + text).digest(); }

  /** The cookie value of a login with the token whose sha256 is `tokenHash`. */
  issue(tokenHash: string, now = Date.now()): string {
    const body = `${now + this.ttlMs}.${tokenHash}`;
    return `${body}.${this.#mac(body).toString('hex')}`;
  }

  async check(value: string, now = Date.now()): Promise<SessionCheck> {
    const m = /^(\d{1,16})\.([0-9a-f]{64})\.([0-9a-f]{64})$/.exec(value);
    if (m === null || !timingSafeEqual(Buffer.from(m[3], 'hex'), this.#mac(`${m[1]}.${m[2]}`))) {
      return { rejected: 'the dashboard login is not valid (the server\'s secret changed?); log in again' };
    }
    if (Number(m[1]) <= now) return { rejected: 'the dashboard login expired; log in again' };
    const name = await this.#operatorByHash(m[2]);
    if (name === undefined) return { rejected: 'the token this dashboard login was made with was revoked; log in with another' };
    return { name };
  }
}

/** The value of cookie `name` in the request, if sent. */
export function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** Set-Cookie for a session (maxAgeMs 0: delete it). Secure when the server speaks HTTPS. */
export function sessionSetCookie(value: string, maxAgeMs: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(maxAgeMs / 1000)}${secure ? '; Secure' : ''}`;
}
