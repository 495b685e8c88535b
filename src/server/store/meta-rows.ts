// The `meta` table: small facts about the database itself (key -> text): the schema version
// (migrations.ts owns that key) and one-time imports done (run-recorder.ts: state-dir-imported).

import type { Sql } from './sql.ts';
import { str } from './sql.ts';

export class MetaRows {
  readonly #sql: Sql;
  constructor(sql: Sql) { this.#sql = sql; }

  async get(key: string): Promise<string | undefined> {
    return str((await this.#sql.get('SELECT value FROM meta WHERE key = ?', [key]))?.value);
  }

  async set(key: string, value: string): Promise<void> {
    await this.#sql.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }
}
