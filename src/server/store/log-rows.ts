// The `logs` table: each machine's log lines (one per phase, log event and result), tagged with
// the run they belong to and when the server received them (retention, run-recorder.ts).

import type { Sql } from './sql.ts';

export class LogRows {
  readonly #sql: Sql;
  constructor(sql: Sql) { this.#sql = sql; }

  /** `at`: ms since 1970, when the server received them */
  async add(mac: string, runId: number | undefined, lines: string[], at: number): Promise<void> {
    for (const line of lines) await this.#sql.run('INSERT INTO logs (mac, run_id, line, at) VALUES (?, ?, ?, ?)', [mac, runId ?? null, line, at]);
  }

  /** Oldest first, the `limit` newest at most; `run`: that run's only. */
  async lines(mac: string, opts: { run?: number; limit?: number } = {}): Promise<string[]> {
    const limit = opts.limit ?? 100_000;
    const rows = opts.run === undefined
      ? await this.#sql.all('SELECT line FROM logs WHERE mac = ? ORDER BY id DESC LIMIT ?', [mac, limit])
      : await this.#sql.all('SELECT line FROM logs WHERE mac = ? AND run_id = ? ORDER BY id DESC LIMIT ?', [mac, opts.run, limit]);
    return rows.map((r) => String(r.line)).reverse();
  }

  async removeFor(mac: string): Promise<number> {
    return this.#sql.run('DELETE FROM logs WHERE mac = ?', [mac]);
  }

  /** Delete lines received before `before` (ms since 1970). */
  async pruneOlderThan(before: number): Promise<number> {
    return this.#sql.run('DELETE FROM logs WHERE at < ?', [before]);
  }

  /** Cut each machine's log to `maxBytes` of text (UTF-8), its oldest lines first. */
  async pruneToSize(maxBytes: number): Promise<number> {
    const bytes = this.#sql.dialect === 'postgres' ? 'octet_length(line)' : 'LENGTH(CAST(line AS BLOB))';
    const over = await this.#sql.all(`SELECT mac FROM logs GROUP BY mac HAVING SUM(${bytes}) > ?`, [maxBytes]);
    let gone = 0;
    for (const r of over) {
      // the newest line whose running total (newest first) passes the limit, and every older one, go
      gone += await this.#sql.run(`DELETE FROM logs WHERE mac = ? AND id <= (
          SELECT id FROM (SELECT id, SUM(${bytes}) OVER (ORDER BY id DESC) AS newer FROM logs WHERE mac = ?) AS t
          WHERE newer > ? ORDER BY id DESC LIMIT 1)`, [String(r.mac), String(r.mac), maxBytes]);
    }
    return gone;
  }
}
