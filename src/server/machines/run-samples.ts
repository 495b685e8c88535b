// Progress samples of each run: what the dashboard's throughput chart draws (bytes written and
// bytes received over time, resumes). Agents report progress every 2 s; a 10-hour run would be
// 18 000 reports, so what is kept is bounded per run:
//
//   - rate: kept samples are at least `resolution` apart (1 s at first). A sample closer than
//     that to the one before the last replaces the last one, so the newest figures are always
//     kept (the series ends at the run's final byte count) while older ones stay spaced.
//   - cap: when a run holds more than MAX_SAMPLES, every second sample is dropped (the first and
//     the last stay) and the run's resolution doubles. A run therefore keeps between
//     MAX_SAMPLES/2 and MAX_SAMPLES samples whatever its length, evenly spaced in time.
//
// Byte counts, resumes and restarts are cumulative, so a dropped sample loses only resolution:
// the bytes and resumes it saw are in the next kept one.
//
// Stored in the `run_samples` and `run_sample_runs` tables of booty.db, created here (additive:
// an older server ignores them). Writes happen inside the run recorder's transaction.

import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { AgentEvent } from '../../config/report.ts';

export const SAMPLE_LIMITS = { maxPerRun: 2000, baseResolutionMs: 1000 };

const SCHEMA = `
CREATE TABLE IF NOT EXISTS run_samples (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id      INTEGER NOT NULL,
  t           INTEGER NOT NULL,     -- the agent's time of the report, ms since 1970
  phase       TEXT,
  bytes       INTEGER NOT NULL,     -- uncompressed bytes written (deploy) or read (capture)
  total       INTEGER,
  wire_bytes  INTEGER,              -- bytes received (deploy) or sent (capture) over the network
  rate        REAL,
  resumes     INTEGER,
  restarts    INTEGER
);
CREATE INDEX IF NOT EXISTS run_samples_by_run ON run_samples (run_id, id);
CREATE TABLE IF NOT EXISTS run_sample_runs (
  run_id         INTEGER PRIMARY KEY,
  resolution_ms  INTEGER NOT NULL
);
`;

type Progress = Extract<AgentEvent, { type: 'progress' }>;

export interface RunSample {
  time: string;
  phase?: string;
  bytes: number;
  total?: number;
  wireBytes?: number;
  rate?: number;
  resumes?: number;
  restarts?: number;
}

/** A sample as the store receives it (t in ms since 1970). */
export interface SampleInput { t: number; phase?: string; bytes: number; total?: number; wireBytes?: number; rate?: number; resumes?: number; restarts?: number }

/** Where a run's series stands (for the rate rule), loaded from the tables on first use. */
interface Tail { count: number; resolutionMs: number; lastId?: number; lastT?: number; prevT?: number; last?: SampleInput }

/** Runs whose tail is kept in memory; more (a restart with thousands of open runs) reload from the table. */
const MAX_TAILS = 4096;

export class RunSamples {
  readonly #tails = new Map<number, Tail>();
  readonly #st: Record<string, StatementSync>;
  readonly #limits: typeof SAMPLE_LIMITS;

  constructor(db: DatabaseSync, limits: Partial<typeof SAMPLE_LIMITS> = {}) {
    db.exec(SCHEMA);
    this.#limits = { ...SAMPLE_LIMITS, ...limits };
    this.#st = {
      insert: db.prepare('INSERT INTO run_samples (run_id, t, phase, bytes, total, wire_bytes, rate, resumes, restarts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      replace: db.prepare('UPDATE run_samples SET t = ?, phase = ?, bytes = ?, total = ?, wire_bytes = ?, rate = ?, resumes = ?, restarts = ? WHERE id = ?'),
      count: db.prepare('SELECT COUNT(*) AS n FROM run_samples WHERE run_id = ?'),
      lastTwo: db.prepare('SELECT * FROM run_samples WHERE run_id = ? ORDER BY id DESC LIMIT 2'),
      resolution: db.prepare('SELECT resolution_ms FROM run_sample_runs WHERE run_id = ?'),
      setResolution: db.prepare('INSERT INTO run_sample_runs (run_id, resolution_ms) VALUES (?, ?) ON CONFLICT (run_id) DO UPDATE SET resolution_ms = excluded.resolution_ms'),
      // every second sample in id order, never the first nor the last
      thin: db.prepare(`DELETE FROM run_samples WHERE id IN (
          SELECT id FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n, COUNT(*) OVER () AS c FROM run_samples WHERE run_id = ?)
          WHERE n % 2 = 0 AND n < c)`),
      all: db.prepare('SELECT * FROM run_samples WHERE run_id = ? ORDER BY id'),
      runOf: db.prepare('SELECT 1 FROM runs WHERE id = ? AND mac = ?'),
      forgetRun: db.prepare('DELETE FROM run_samples WHERE run_id = ?'),
      forgetRunRes: db.prepare('DELETE FROM run_sample_runs WHERE run_id = ?'),
    };
  }

  #tail(runId: number): Tail {
    let tail = this.#tails.get(runId);
    if (tail !== undefined) return tail;
    const count = Number((this.#st.count.get(runId) as { n: number }).n);
    const res = this.#st.resolution.get(runId) as { resolution_ms: number } | undefined;
    const [last, prev] = this.#st.lastTwo.all(runId) as Record<string, number | string | null>[];
    tail = {
      count, resolutionMs: res === undefined ? this.#limits.baseResolutionMs : Number(res.resolution_ms),
      lastId: last === undefined ? undefined : Number(last.id), lastT: last === undefined ? undefined : Number(last.t),
      prevT: prev === undefined ? undefined : Number(prev.t), last: last === undefined ? undefined : inputOf(last),
    };
    if (this.#tails.size >= MAX_TAILS) this.#tails.delete(this.#tails.keys().next().value as number);
    this.#tails.set(runId, tail);
    return tail;
  }

  /** A progress report of run `runId` (call inside the recorder's transaction). */
  progress(runId: number, e: Progress): void {
    const t = Date.parse(e.time);
    if (!Number.isFinite(t)) return;
    this.add(runId, {
      t, phase: e.phase, bytes: e.bytes, total: e.total, wireBytes: e.wireBytes, rate: e.rate, resumes: e.resumes, restarts: e.restarts,
    });
  }

  /**
   * A result of run `runId`: its byte count is the run's last sample (the last progress report
   * may be up to 2 s older than the end), for runs that reported progress at all.
   */
  result(runId: number, e: Extract<AgentEvent, { type: 'result' }>): void {
    const tail = this.#tail(runId);
    const t = Date.parse(e.time);
    if (tail.last === undefined || e.bytes === undefined || !Number.isFinite(t)) return;
    this.add(runId, {
      ...tail.last, t: Math.max(t, tail.last.t), bytes: e.bytes, rate: undefined,
      // bytes on the wire after the last report are not known: the network series ends there
      wireBytes: undefined,
      resumes: e.resumes ?? tail.last.resumes, restarts: e.restarts ?? tail.last.restarts,
    });
  }

  /** Keep one sample under the rate and cap rules (see the header). */
  add(runId: number, s: SampleInput): void {
    const tail = this.#tail(runId);
    const row = [s.t, s.phase ?? null, s.bytes, s.total ?? null, s.wireBytes ?? null, s.rate ?? null, s.resumes ?? null, s.restarts ?? null] as const;
    // the last sample is provisional while it is closer than the resolution to the one before
    if (tail.lastId !== undefined && tail.prevT !== undefined && tail.lastT !== undefined && tail.lastT - tail.prevT < tail.resolutionMs) {
      this.#st.replace.run(...row, tail.lastId);
      tail.lastT = s.t;
      tail.last = s;
      return;
    }
    tail.lastId = Number(this.#st.insert.run(runId, ...row).lastInsertRowid);
    tail.prevT = tail.lastT;
    tail.lastT = s.t;
    tail.last = s;
    tail.count++;
    if (tail.count > this.#limits.maxPerRun) {
      const removed = Number(this.#st.thin.run(runId).changes);
      tail.count -= removed;
      tail.resolutionMs *= 2;
      this.#st.setResolution.run(runId, tail.resolutionMs);
      const [, prev] = this.#st.lastTwo.all(runId) as Record<string, number>[];
      tail.prevT = prev === undefined ? undefined : Number(prev.t);
    }
  }

  /** Whether `runId` is a run of `mac` (the route answers 404 otherwise). */
  isRunOf(mac: string, runId: number): boolean { return this.#st.runOf.get(runId, mac) !== undefined; }

  /** A run's samples, oldest first, and the spacing they were kept at. */
  samples(runId: number): { resolutionMs: number; samples: RunSample[] } {
    const rows = this.#st.all.all(runId) as Record<string, number | string | null>[];
    const res = this.#st.resolution.get(runId) as { resolution_ms: number } | undefined;
    return {
      resolutionMs: res === undefined ? this.#limits.baseResolutionMs : Number(res.resolution_ms),
      samples: rows.map((r) => {
        const s = inputOf(r);
        const { t, ...rest } = s;
        return { time: new Date(t).toISOString(), ...withoutUndefined(rest) } as RunSample;
      }),
    };
  }

  /** The runs' samples go with them (`booty machines rm --history`). */
  forget(runIds: Iterable<number>): void {
    for (const id of runIds) {
      this.#st.forgetRun.run(id);
      this.#st.forgetRunRes.run(id);
      this.#tails.delete(id);
    }
  }
}

function inputOf(r: Record<string, number | string | null>): SampleInput {
  const num = (v: number | string | null) => (v === null ? undefined : Number(v));
  return {
    t: Number(r.t), phase: r.phase === null ? undefined : String(r.phase), bytes: Number(r.bytes), total: num(r.total),
    wireBytes: num(r.wire_bytes), rate: num(r.rate), resumes: num(r.resumes), restarts: num(r.restarts),
  };
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
