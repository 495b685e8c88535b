// The `meta` table: small facts about the database itself (key -> text): the schema version
// (migrations.ts owns that key), one-time imports done (run-recorder.ts: state-dir-imported) and,
// on PostgreSQL, the server secret every replica shares (trust/server-secret.ts: server-secret).

import type { Sql } from './sql.ts';
import { str } from './sql.ts';

export class MetaRows {
  readonly #sql: Sql;
  constructor(sql: Sql) { this.#sql = sql; }

  async get(key: string): Promise<string | undefined> {
    return str((await this.#sql.get('SELECT value FROM meta WHERE key = ?', [key]))?.value);
  }

  /** Store `value` under `key` unless the key has one already; the value the key has after it. */
  async claim(key: string, value: string): Promise<string> {
    // the primary key's conflict decides which of several racing replicas wrote it, not a read before the write
    await this.#sql.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING', [key, value]);
    return (await this.get(key))!;
  }

  async set(key: string, value: string): Promise<void> {
    await this.#sql.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }
}
