// Named operator tokens, stored hashed in booty.db (table operator_tokens): made by
// `booty tokens add NAME` (shown once), listed, revoked. A token is 32 random bytes, so one
// SHA-256 is enough to keep the database from being a list of usable tokens (no slow hash
// needed: nobody can guess 256 bits). The server looks a bearer token up by its hash on every
// request, so a token added or revoked while it runs counts at once.

import { createHash, randomBytes } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';

export const TOKEN_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export interface OperatorTokenInfo { name: string; created: string }

export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class OperatorTokens {
  readonly #db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
    db.exec('CREATE TABLE IF NOT EXISTS operator_tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, created TEXT NOT NULL)');
  }

  /** A new token named `name`; the only time it is ever seen in clear. */
  add(name: string): string {
    if (!TOKEN_NAME.test(name)) throw new Error(`token name ${JSON.stringify(name)} must be 1-64 characters of A-Z a-z 0-9 . _ -`);
    if (this.#db.prepare('SELECT 1 FROM operator_tokens WHERE name = ?').get(name) !== undefined) {
      throw new Error(`a token named "${name}" exists; revoke it first (booty tokens revoke ${name}) or pick another name`);
    }
    const token = `booty-op-${randomBytes(32).toString('base64url')}`;
    this.#db.prepare('INSERT INTO operator_tokens (name, hash, created) VALUES (?, ?, ?)').run(name, tokenHash(token), new Date().toISOString());
    return token;
  }

  list(): OperatorTokenInfo[] {
    return this.#db.prepare('SELECT name, created FROM operator_tokens ORDER BY name').all() as unknown as OperatorTokenInfo[];
  }

  revoke(name: string): boolean {
    return Number(this.#db.prepare('DELETE FROM operator_tokens WHERE name = ?').run(name).changes) > 0;
  }

  /** The name of the token whose sha256 (hex) is `hash`, or undefined. */
  nameOfHash(hash: string): string | undefined {
    const row = this.#db.prepare('SELECT name FROM operator_tokens WHERE hash = ?').get(hash) as { name: string } | undefined;
    return row?.name;
  }

  count(): number {
    return Number((this.#db.prepare('SELECT count(*) AS n FROM operator_tokens').get() as { n: number }).n);
  }
}
