// Named operator tokens, stored hashed in the state store (table operator_tokens, booty.db or
// the replicas' PostgreSQL): made by `booty tokens add NAME` (shown once), listed, revoked. A
// token is 32 random bytes, so one SHA-256 is enough to keep the database from being a list of
// usable tokens (no slow hash needed: nobody can guess 256 bits). The server looks a bearer
// token up by its hash on every request, so a token added or revoked while it runs (through any
// replica) counts at once.

import { createHash, randomBytes } from 'node:crypto';
import type { StateStore } from '../store/state-store.ts';

export const TOKEN_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export interface OperatorTokenInfo { name: string; created: string }

export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class OperatorTokens {
  readonly #store: StateStore;

  constructor(store: StateStore) {
    this.#store = store;
  }

  /** A new token named `name`; the only time it is ever seen in clear. */
  async add(name: string): Promise<string> {
    if (!TOKEN_NAME.test(name)) throw new Error(`token name ${JSON.stringify(name)} must be 1-64 characters of A-Z a-z 0-9 . _ -`);
    const token = `booty-op-${randomBytes(32).toString('base64url')}`;
    if (!await this.#store.tokens.add(name, tokenHash(token), new Date().toISOString())) {
      throw new Error(`a token named "${name}" exists; revoke it first (booty tokens revoke ${name}) or pick another name`);
    }
    return token;
  }

  list(): Promise<OperatorTokenInfo[]> { return this.#store.tokens.list(); }

  revoke(name: string): Promise<boolean> { return this.#store.tokens.revoke(name); }

  /** The name of the token whose sha256 (hex) is `hash`, or undefined. */
  nameOfHash(hash: string): Promise<string | undefined> { return this.#store.tokens.nameOfHash(hash); }

  async count(): Promise<number> { return (await this.#store.tokens.list()).length; }
}
