// The `runs` table: one row per boot of a machine's agent (phases, bytes, rate, result).
//
// A run is identified by its machine and the time of the event that started it: an agent that
// retries a batch (its answer was lost, or it went to another replica) sends the same `booting`
// event again, and startOrJoin() finds the run it already started instead of making a second.
// Callers hold the machine's row lock (MachineRows.lock) so two replicas cannot both start it.

import type { Sql, SqlRow } from './sql.ts';
import { num, str } from './sql.ts';

export interface RunRow {
  id: number; mac: string; started: string; ended?: string; action?: string; phase?: string;
  phases: { phase: string; time: string }[]; bytes?: number; total?: number; wireBytes?: number; rate?: number;
  ok?: boolean; code?: string; error?: string; diskState?: string; seconds?: number; sha256?: string; resultAction?: string;
}

export interface RunResult {
  ended: string; ok: boolean; code?: string; error?: string; diskState?: string; seconds?: number; sha256?: string;
  /** the result's byte count; undefined keeps the last progress' */
  bytes?: number; resultAction: string; phase: string; phases: { phase: string; time: string }[];
}

function rowOf(r: SqlRow): RunRow {
  return {
    id: Number(r.id), mac: String(r.mac), started: String(r.started), ended: str(r.ended), action: str(r.action),
    phase: str(r.phase), phases: JSON.parse(String(r.phases)) as RunRow['phases'],
    bytes: num(r.bytes), total: num(r.total), wireBytes: num(r.wire_bytes), rate: num(r.rate),
    ok: r.ok === null ? undefined : Number(r.ok) === 1, code: str(r.code), error: str(r.error), diskState: str(r.disk_state),
    seconds: num(r.seconds), sha256: str(r.sha256), resultAction: str(r.result_action),
  };
}

export class RunRows {
  readonly #sql: Sql;
  constructor(sql: Sql) { this.#sql = sql; }

  async start(mac: string, started: string, action: string | undefined, phase: string | undefined): Promise<number> {
    const r = await this.#sql.get("INSERT INTO runs (mac, started, action, phase, phases) VALUES (?, ?, ?, ?, '[]') RETURNING id",
      [mac, started, action ?? null, phase ?? null]);
    return Number(r?.id);
  }

  /**
   * The run that started at `started` if it is the machine's latest (a retried report), else a
   * new one; the previous run, still open, is closed at `started`. Hold the machine's lock.
   */
  async startOrJoin(mac: string, started: string, action: string | undefined, phase: string | undefined): Promise<{ id: number; joined: boolean }> {
    const last = await this.latest(mac);
    if (last !== undefined && last.started === started) return { id: last.id, joined: true };
    if (last !== undefined && last.ended === undefined) await this.close(last.id, started);
    return { id: await this.start(mac, started, action, phase), joined: false };
  }

  async latest(mac: string): Promise<RunRow | undefined> {
    const r = await this.#sql.get('SELECT * FROM runs WHERE mac = ? ORDER BY id DESC LIMIT 1', [mac]);
    return r === undefined ? undefined : rowOf(r);
  }

  /** The id of the machine's latest run (what its summary links to). */
  async latestId(mac: string): Promise<number | undefined> {
    const r = await this.#sql.get('SELECT MAX(id) AS id FROM runs WHERE mac = ?', [mac]);
    return r === undefined || r.id === null ? undefined : Number(r.id);
  }

  /** Whether run `id` is one of `mac`'s. */
  async isRunOf(mac: string, id: number): Promise<boolean> {
    return await this.#sql.get('SELECT 1 AS one FROM runs WHERE id = ? AND mac = ?', [id, mac]) !== undefined;
  }

  async get(id: number): Promise<RunRow | undefined> {
    const r = await this.#sql.get('SELECT * FROM runs WHERE id = ?', [id]);
    return r === undefined ? undefined : rowOf(r);
  }

  /** Newest first. */
  async list(mac: string, limit = 50): Promise<RunRow[]> {
    return (await this.#sql.all('SELECT * FROM runs WHERE mac = ? ORDER BY id DESC LIMIT ?', [mac, limit])).map(rowOf);
  }

  async setPhase(id: number, phase: string, phases: RunRow['phases']): Promise<void> {
    await this.#sql.run('UPDATE runs SET phase = ?, phases = ? WHERE id = ?', [phase, JSON.stringify(phases), id]);
  }

  async setProgress(id: number, p: { bytes: number; total?: number; wireBytes?: number; rate: number }): Promise<void> {
    await this.#sql.run('UPDATE runs SET bytes = ?, total = ?, wire_bytes = ?, rate = ? WHERE id = ?', [p.bytes, p.total ?? null, p.wireBytes ?? null, p.rate, id]);
  }

  async setResult(id: number, r: RunResult): Promise<void> {
    await this.#sql.run(`UPDATE runs SET ended = ?, ok = ?, code = ?, error = ?, disk_state = ?, seconds = ?, sha256 = ?,
        bytes = COALESCE(?, bytes), result_action = ?, phase = ?, phases = ? WHERE id = ?`,
    [r.ended, r.ok ? 1 : 0, r.code ?? null, r.error ?? null, r.diskState ?? null, r.seconds ?? null, r.sha256 ?? null,
      r.bytes ?? null, r.resultAction, r.phase, JSON.stringify(r.phases), id]);
  }

  /** Close a run that never reported a result (the next one started). */
  async close(id: number, ended: string): Promise<void> {
    await this.#sql.run('UPDATE runs SET ended = ? WHERE id = ? AND ended IS NULL', [ended, id]);
  }

  async removeFor(mac: string): Promise<number> {
    return this.#sql.run('DELETE FROM runs WHERE mac = ?', [mac]);
  }

  /** Figures for /metrics, from every run ever recorded. */
  async totals(): Promise<{ action: string; result: string; count: number; bytes: number; seconds: number }[]> {
    const rows = await this.#sql.all(`SELECT COALESCE(result_action, 'unknown') AS action,
        CASE WHEN ok = 1 THEN 'ok' WHEN ok = 0 THEN 'failed' ELSE 'unfinished' END AS result,
        COUNT(*) AS count, COALESCE(SUM(bytes), 0) AS bytes, COALESCE(SUM(seconds), 0) AS seconds
      FROM runs WHERE ended IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2`);
    return rows.map((r) => ({ action: String(r.action), result: String(r.result), count: Number(r.count), bytes: Number(r.bytes), seconds: Number(r.seconds) }));
  }

  async durations(): Promise<{ action: string; seconds: number }[]> {
    const rows = await this.#sql.all('SELECT result_action AS action, seconds FROM runs WHERE ok IS NOT NULL AND seconds IS NOT NULL AND result_action IS NOT NULL ORDER BY id');
    return rows.map((r) => ({ action: String(r.action), seconds: Number(r.seconds) }));
  }
}
