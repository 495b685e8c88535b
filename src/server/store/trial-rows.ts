// The `trials` table: each machine's last trial boot (machines/trial-boot.ts's TrialRecord as
// JSON), one row per machine, replaced when a new trial starts. Read from the database at each
// use (no copy in the process), so every replica judges the same trial.

import type { Sql } from './sql.ts';
import { str } from './sql.ts';

export class TrialRows {
  readonly #sql: Sql;
  constructor(sql: Sql) { this.#sql = sql; }

  /** the record's JSON, or undefined */
  async get(mac: string): Promise<string | undefined> {
    return str((await this.#sql.get('SELECT record FROM trials WHERE mac = ?', [mac]))?.record);
  }

  async put(mac: string, record: string): Promise<void> {
    await this.#sql.run('INSERT INTO trials (mac, record) VALUES (?, ?) ON CONFLICT (mac) DO UPDATE SET record = excluded.record', [mac, record]);
  }

  async remove(mac: string): Promise<number> {
    return this.#sql.run('DELETE FROM trials WHERE mac = ?', [mac]);
  }
}
