// The `operator_tokens` table: named operator tokens, stored as their SHA-256 (trust/operator-tokens.ts
// makes and hashes them). Shared by every replica, so a token added through one counts on all.

import type { Sql } from './sql.ts';

export interface TokenRow { name: string; created: string }

export class TokenRows {
  readonly #sql: Sql;
  constructor(sql: Sql) { this.#sql = sql; }

  /** false: the name is taken (the insert's own conflict decides, not a read before it) */
  async add(name: string, hash: string, created: string): Promise<boolean> {
    return await this.#sql.run('INSERT INTO operator_tokens (name, hash, created) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING', [name, hash, created]) > 0;
  }

  async list(): Promise<TokenRow[]> {
    return (await this.#sql.all('SELECT name, created FROM operator_tokens ORDER BY name')).map((r) => ({ name: String(r.name), created: String(r.created) }));
  }

  async revoke(name: string): Promise<boolean> {
    return await this.#sql.run('DELETE FROM operator_tokens WHERE name = ?', [name]) > 0;
  }

  async nameOfHash(hash: string): Promise<string | undefined> {
    const r = await this.#sql.get('SELECT name FROM operator_tokens WHERE hash = ?', [hash]);
    return r === undefined ? undefined : String(r.name);
  }
}
