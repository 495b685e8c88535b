// The `run_samples` and `run_sample_runs` tables: each run's kept progress samples (what the
// dashboard's throughput chart draws) and the spacing they are kept at. Which samples are kept
// is decided by machines/run-samples.ts, inside the run recorder's transaction (the machine's
// row lock held), so two replicas recording one run take turns on its samples too.
//
// Both tables came with the dashboard's machine page (schema 2, migrations.ts); booty.db files
// of that server version already hold them, with the same columns.

import type { Sql, SqlRow } from './sql.ts';
import { num, str } from './sql.ts';

/** A sample as stored (t: the agent's time of the report, ms since 1970). */
export interface SampleRow {
  t: number; phase?: string; bytes: number; total?: number; wireBytes?: number; rate?: number; resumes?: number; restarts?: number;
}

/** Where a run's series stands: what the rate and cap rules look at. */
export interface SampleTail {
  count: number;
  /** undefined: never set (the base resolution) */
  resolutionMs?: number;
  last?: SampleRow & { id: number };
  prevT?: number;
}

function sampleOf(r: SqlRow): SampleRow {
  return {
    t: Number(r.t), phase: str(r.phase), bytes: Number(r.bytes), total: num(r.total), wireBytes: num(r.wire_bytes),
    rate: num(r.rate), resumes: num(r.resumes), restarts: num(r.restarts),
  };
}

const values = (s: SampleRow) => [s.t, s.phase ?? null, s.bytes, s.total ?? null, s.wireBytes ?? null, s.rate ?? null, s.resumes ?? null, s.restarts ?? null];

export class RunSampleRows {
  readonly #sql: Sql;
  constructor(sql: Sql) { this.#sql = sql; }

  /** One statement per report (the recorder calls it for each): the last two samples, with the run's count and resolution. */
  async tail(runId: number): Promise<SampleTail> {
    const [last, prev] = await this.#sql.all(`SELECT *, (SELECT COUNT(*) FROM run_samples WHERE run_id = ?) AS n,
        (SELECT resolution_ms FROM run_sample_runs WHERE run_id = ?) AS res FROM run_samples WHERE run_id = ? ORDER BY id DESC LIMIT 2`, [runId, runId, runId]);
    // no sample: no resolution either (both go together, removeFor)
    if (last === undefined) return { count: 0 };
    return {
      count: Number(last.n), resolutionMs: num(last.res),
      last: { ...sampleOf(last), id: Number(last.id) }, prevT: prev === undefined ? undefined : Number(prev.t),
    };
  }

  async resolution(runId: number): Promise<number | undefined> {
    return num((await this.#sql.get('SELECT resolution_ms FROM run_sample_runs WHERE run_id = ?', [runId]))?.resolution_ms);
  }

  async setResolution(runId: number, ms: number): Promise<void> {
    await this.#sql.run('INSERT INTO run_sample_runs (run_id, resolution_ms) VALUES (?, ?) ON CONFLICT (run_id) DO UPDATE SET resolution_ms = excluded.resolution_ms', [runId, ms]);
  }

  async add(runId: number, s: SampleRow): Promise<number> {
    const r = await this.#sql.get('INSERT INTO run_samples (run_id, t, phase, bytes, total, wire_bytes, rate, resumes, restarts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id',
      [runId, ...values(s)]);
    return Number(r?.id);
  }

  async replace(id: number, s: SampleRow): Promise<void> {
    await this.#sql.run('UPDATE run_samples SET t = ?, phase = ?, bytes = ?, total = ?, wire_bytes = ?, rate = ?, resumes = ?, restarts = ? WHERE id = ?', [...values(s), id]);
  }

  /** Drop every second sample of the run in id order, never the first nor the last; how many went. */
  async thin(runId: number): Promise<number> {
    return this.#sql.run(`DELETE FROM run_samples WHERE id IN (
        SELECT id FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n, COUNT(*) OVER () AS c FROM run_samples WHERE run_id = ?) AS numbered
        WHERE n % 2 = 0 AND n < c)`, [runId]);
  }

  /** Oldest first. */
  async list(runId: number): Promise<SampleRow[]> {
    return (await this.#sql.all('SELECT * FROM run_samples WHERE run_id = ? ORDER BY id', [runId])).map(sampleOf);
  }

  /** The samples of every run of `mac` (before its runs are deleted: `booty machines rm --history`). */
  async removeFor(mac: string): Promise<number> {
    await this.#sql.run('DELETE FROM run_sample_runs WHERE run_id IN (SELECT id FROM runs WHERE mac = ?)', [mac]);
    return this.#sql.run('DELETE FROM run_samples WHERE run_id IN (SELECT id FROM runs WHERE mac = ?)', [mac]);
  }
}
