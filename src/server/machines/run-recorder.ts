// The run recorder: what agents reported. Each machine's last state (phase, progress, result,
// seen times), its runs (one per boot of the agent: phases, bytes, rate, result) and its log
// lines, in DIR/booty.db (db.ts), so all of it survives a restart. Progress is batched (one
// transaction a second at most); phases and results are written at once.
//
// Log retention: lines older than `maxAgeMs` go, and a machine's log is cut (oldest lines
// first) to `maxBytesPerMachine` of text; pruneLogs() runs at start and every hour (server.ts).

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { AgentEvent, Phase } from '../../config/report.ts';
import { inTransaction } from '../db.ts';
import { normalizeMac } from '../names.ts';
import type { MachineChanges } from './changes.ts';

export interface MachineState {
  mac: string;
  firstSeen?: string;
  lastSeen?: string;
  phase?: Phase;
  phaseDetail?: string;
  phaseSince?: string;
  progress?: Extract<AgentEvent, { type: 'progress' }>;
  result?: Extract<AgentEvent, { type: 'result' }>;
  events: number;
}

export interface RunRecord {
  id: number; mac: string; started: string; ended?: string; action?: string; phase?: string;
  phases: { phase: string; time: string }[]; bytes?: number; total?: number; wireBytes?: number; rate?: number;
  ok?: boolean; code?: string; error?: string; diskState?: string; seconds?: number; sha256?: string; resultAction?: string;
}

export interface LogRetention {
  /** log lines received longer ago than this are deleted; undefined or 0: kept */
  maxAgeMs?: number;
  /** a machine's log is cut to this many bytes of text, oldest lines first; undefined or 0: no limit */
  maxBytesPerMachine?: number;
}

export const DEFAULT_LOG_RETENTION: Required<LogRetention> = { maxAgeMs: 30 * 24 * 3600 * 1000, maxBytesPerMachine: 16 << 20 };

/** How the recorder's caller takes part in a batch of events (the one-shot rule is not ours). */
export interface RecordHooks {
  /** what a run starting now does, in words (asked at each run start) */
  runLabel(): string | undefined;
  /** a result arrived; called inside the recorder's transaction */
  onResult(e: Extract<AgentEvent, { type: 'result' }>, now: string): void;
  /** a progress report of run `runId`; called inside the recorder's transaction (run-samples.ts) */
  onProgress?(runId: number, e: Extract<AgentEvent, { type: 'progress' }>): void;
}

interface Reported {
  state: MachineState;
  /** the run events attach to, and whether it still runs (no result yet) */
  runId?: number;
  runOpen: boolean;
  runPhases: { phase: string; time: string }[];
}

const RECENT_LINES = 200;
const SAVE_DELAY_MS = 1000;
/** phases an agent reports after its result, still about the run that just ended */
const AFTER_RESULT_PHASES = new Set<string>(['rebooting', 'powering-off', 'shell', 'done', 'failed']);

/** One log line per event that an operator wants to read later; progress is state, not log. */
export function logLineFor(e: AgentEvent): string | undefined {
  const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ⏎ ');
  switch (e.type) {
    case 'phase': return `${e.time} phase ${e.phase}${e.detail === undefined ? '' : `: ${oneLine(e.detail)}`}`;
    case 'log': return `${e.time} ${e.level} ${oneLine(e.message)}`;
    case 'result': {
      const what = e.ok ? 'ok' : 'FAILED';
      const extra = [e.code, e.message, e.diskState === undefined ? undefined : `disk: ${e.diskState}`, e.bytes === undefined ? undefined : `${e.bytes} bytes`, e.sha256 === undefined ? undefined : `sha256 ${e.sha256}`]
        .filter((x) => x !== undefined).map((x) => oneLine(String(x)));
      return `${e.time} result ${e.action} ${what}${extra.length > 0 ? ': ' + extra.join('; ') : ''}`;
    }
    case 'progress': return undefined;
  }
}

export class RunRecorder {
  readonly #dataDir: string;
  readonly #db: DatabaseSync;
  readonly #changes: MachineChanges;
  readonly #now: () => number;
  readonly #reported = new Map<string, Reported>();
  /** the last RECENT_LINES log lines per machine, loaded on first use */
  readonly #recent = new Map<string, string[]>();
  readonly #dirty = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #st!: Record<string, StatementSync>;

  /** `now`: the clock log lines are stamped with (tests age them) */
  constructor(dataDir: string, db: DatabaseSync, changes: MachineChanges, opts: { now?: () => number } = {}) {
    this.#dataDir = dataDir;
    this.#db = db;
    this.#changes = changes;
    this.#now = opts.now ?? Date.now;
  }

  async init(): Promise<void> {
    const db = this.#db;
    this.#st = {
      saveState: db.prepare(`INSERT INTO machines (mac, created, updated, state) VALUES (:mac, :now, :now, :state)
        ON CONFLICT (mac) DO UPDATE SET state = :state`),
      startRun: db.prepare('INSERT INTO runs (mac, started, action, phase, phases) VALUES (?, ?, ?, ?, ?)'),
      runPhase: db.prepare('UPDATE runs SET phase = ?, phases = ? WHERE id = ?'),
      runProgress: db.prepare('UPDATE runs SET bytes = ?, total = ?, wire_bytes = ?, rate = ? WHERE id = ?'),
      runResult: db.prepare(`UPDATE runs SET ended = ?, ok = ?, code = ?, error = ?, disk_state = ?, seconds = ?, sha256 = ?,
        bytes = COALESCE(?, bytes), result_action = ?, phase = ?, phases = ? WHERE id = ?`),
      closeRun: db.prepare('UPDATE runs SET ended = ? WHERE id = ? AND ended IS NULL'),
      addLog: db.prepare('INSERT INTO logs (mac, run_id, line, at) VALUES (?, ?, ?, ?)'),
      lastLines: db.prepare('SELECT line FROM logs WHERE mac = ? ORDER BY id DESC LIMIT ?'),
    };
    const lastRuns = new Map<string, { id: number; ended: string | null; phases: string }>();
    for (const r of db.prepare('SELECT mac, id, ended, phases FROM runs WHERE id IN (SELECT MAX(id) FROM runs GROUP BY mac)').all() as { mac: string; id: number; ended: string | null; phases: string }[]) {
      lastRuns.set(r.mac, r);
    }
    for (const r of db.prepare('SELECT mac, state FROM machines').all() as { mac: string; state: string | null }[]) {
      const mac = String(r.mac);
      const run = lastRuns.get(mac);
      let state: MachineState = { mac, events: 0 };
      try { if (r.state !== null) state = { ...JSON.parse(String(r.state)) as MachineState, mac }; } catch { /* a damaged row only loses its last state */ }
      this.#reported.set(mac, {
        state, runId: run?.id, runOpen: run !== undefined && run.ended === null,
        runPhases: run === undefined ? [] : JSON.parse(run.phases) as { phase: string; time: string }[],
      });
    }
    await this.#importStateDir();
  }

  /** The per-file state of the previous server version (DIR/state/<mac>.json, .log), imported once. */
  async #importStateDir(): Promise<void> {
    const done = this.#db.prepare("SELECT value FROM meta WHERE key = 'state-dir-imported'").get();
    if (done !== undefined) return;
    const dir = join(this.#dataDir, 'state');
    let files: string[] = [];
    try { files = await readdir(dir); } catch { /* nothing to import */ }
    for (const f of files) {
      const mac = f.endsWith('.json') ? normalizeMac(f.slice(0, -5)) : undefined;
      if (mac === undefined || this.#reported.has(mac)) continue;
      try {
        const s = JSON.parse(await readFile(join(dir, f), 'utf8')) as MachineState;
        const rec = this.#ensure(mac);
        rec.state = { ...s, mac };
        const lines = (await readFile(join(dir, `${mac}.log`), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
        inTransaction(this.#db, () => {
          this.#saveState(rec);
          for (const l of lines) this.#st.addLog.run(mac, null, l, this.#now());
        });
      } catch { /* a damaged state file only loses history */ }
    }
    this.#db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('state-dir-imported', ?)").run(new Date().toISOString());
  }

  macs(): Iterable<string> { return this.#reported.keys(); }

  /** The machine's last reported state; undefined for a machine that never reported. */
  state(mac: string): Readonly<MachineState> | undefined { return this.#reported.get(mac)?.state; }

  /** The run its events attach to (the latest). */
  runId(mac: string): number | undefined { return this.#reported.get(mac)?.runId; }

  #ensure(mac: string): Reported {
    let rec = this.#reported.get(mac);
    if (rec === undefined) {
      rec = { state: { mac, events: 0 }, runOpen: false, runPhases: [] };
      this.#reported.set(mac, rec);
    }
    return rec;
  }

  #saveState(rec: Reported): void {
    this.#st.saveState.run({ mac: rec.state.mac, now: new Date().toISOString(), state: JSON.stringify(rec.state) });
    this.#dirty.delete(rec.state.mac);
  }

  /** Apply a batch of events from one agent (runs, phases, log lines) in one transaction. */
  record(mac: string, events: AgentEvent[], hooks: RecordHooks): MachineState {
    const now = new Date().toISOString();
    const at = this.#now();
    const rec = this.#ensure(mac);
    const s = rec.state;
    s.firstSeen ??= now;
    const lines: string[] = [];
    let important = false;
    inTransaction(this.#db, () => {
      for (const e of events) {
        s.events++;
        const startsRun = rec.runId === undefined
          || (e.type === 'phase' && e.phase === 'booting')
          || (!rec.runOpen && (e.type === 'progress' || (e.type === 'phase' && !AFTER_RESULT_PHASES.has(e.phase))));
        if (startsRun) {
          if (rec.runOpen && rec.runId !== undefined) this.#st.closeRun.run(e.time, rec.runId);
          rec.runPhases = [];
          rec.runId = Number(this.#st.startRun.run(mac, e.time, hooks.runLabel() ?? null, e.type === 'phase' ? e.phase : null, '[]').lastInsertRowid);
          rec.runOpen = true;
          // a new run: the previous result and progress no longer describe it
          s.result = undefined;
          s.progress = undefined;
          important = true;
        }
        const runId = rec.runId as number;
        switch (e.type) {
          case 'phase':
            if (s.phase !== e.phase) s.phaseSince = e.time;
            s.phase = e.phase;
            s.phaseDetail = e.detail;
            rec.runPhases.push({ phase: e.phase, time: e.time });
            this.#st.runPhase.run(e.phase, JSON.stringify(rec.runPhases), runId);
            important = true;
            break;
          case 'progress':
            s.progress = e;
            hooks.onProgress?.(runId, e);
            break;
          case 'result': {
            s.result = e;
            s.phase = e.ok ? 'done' : 'failed';
            s.phaseSince = e.time;
            rec.runPhases.push({ phase: s.phase, time: e.time });
            // the last progress first: the result's own byte count, when it has one, wins
            if (s.progress !== undefined) this.#st.runProgress.run(s.progress.bytes, s.progress.total ?? null, s.progress.wireBytes ?? null, s.progress.rate, runId);
            this.#st.runResult.run(e.time, e.ok ? 1 : 0, e.code ?? null, e.message ?? null, e.diskState ?? null, e.seconds ?? null,
              e.sha256 ?? null, e.bytes ?? null, e.action, s.phase, JSON.stringify(rec.runPhases), runId);
            rec.runOpen = false;
            hooks.onResult(e, now);
            important = true;
            break;
          }
          case 'log':
            break;
        }
        const line = logLineFor(e);
        if (line !== undefined) {
          lines.push(line);
          this.#st.addLog.run(mac, runId, line, at);
        }
      }
      s.lastSeen = now;
      if (important) this.#saveState(rec);
    });
    if (lines.length > 0) {
      const recent = this.recentLog(mac);
      recent.push(...lines);
      if (recent.length > RECENT_LINES) recent.splice(0, recent.length - RECENT_LINES);
      this.#changes.emit({ type: 'log', mac, lines });
    }
    if (!important) {
      this.#dirty.add(mac);
      this.#timer ??= setTimeout(() => { this.#timer = undefined; void this.flush(); }, SAVE_DELAY_MS);
    }
    this.#changes.emit({ type: 'machine', mac });
    return s;
  }

  /** A line the server itself adds to a machine's log (in its latest run), e.g. a trial boot
   *  that was not confirmed: what an operator reads beside the agent's own lines. */
  note(mac: string, line: string): void {
    const runId = this.#reported.get(mac)?.runId ?? null;
    this.#st.addLog.run(mac, runId, line, this.#now());
    const recent = this.recentLog(mac);
    recent.push(line);
    if (recent.length > RECENT_LINES) recent.splice(0, recent.length - RECENT_LINES);
    this.#changes.emit({ type: 'log', mac, lines: [line] });
    this.#changes.emit({ type: 'machine', mac });
  }

  /** The machine's last log lines (at most 200), oldest first; the array is the recorder's own. */
  recentLog(mac: string): string[] {
    let recent = this.#recent.get(mac);
    if (recent === undefined) {
      recent = (this.#st.lastLines.all(mac, RECENT_LINES) as { line: string }[]).map((r) => r.line).reverse();
      this.#recent.set(mac, recent);
    }
    return recent;
  }

  /** Save what progress events changed (they are batched: one transaction a second at most). */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) { clearTimeout(this.#timer); this.#timer = undefined; }
    if (this.#dirty.size === 0) return;
    const macs = [...this.#dirty];
    this.#dirty.clear();
    try {
      inTransaction(this.#db, () => {
        for (const mac of macs) {
          const rec = this.#reported.get(mac);
          if (rec === undefined) continue;
          this.#saveState(rec);
          const p = rec.state.progress;
          if (p !== undefined && rec.runId !== undefined && rec.runOpen) this.#st.runProgress.run(p.bytes, p.total ?? null, p.wireBytes ?? null, p.rate, rec.runId);
        }
      });
    } catch (e) {
      process.stderr.write(`booty server: warn: could not save machine state: ${(e as Error).message}\n`);
    }
  }

  /** Forget what a machine reported (its row is deleted by the caller); `history`: its runs and log too. */
  forget(mac: string, opts: { history?: boolean } = {}): void {
    if (opts.history === true) {
      this.#db.prepare('DELETE FROM runs WHERE mac = ?').run(mac);
      this.#db.prepare('DELETE FROM logs WHERE mac = ?').run(mac);
    }
    this.#reported.delete(mac);
    this.#recent.delete(mac);
    this.#dirty.delete(mac);
  }

  // ---- reading --------------------------------------------------------------------------------

  runs(mac: string, limit = 50): RunRecord[] {
    const rows = this.#db.prepare('SELECT * FROM runs WHERE mac = ? ORDER BY id DESC LIMIT ?').all(mac, limit) as Record<string, string | number | null>[];
    return rows.map(runOf);
  }

  /** Log lines of a machine (or one of its runs), oldest first, `limit` newest at most. */
  log(mac: string, opts: { run?: number; limit?: number } = {}): string[] {
    const limit = opts.limit ?? 100_000;
    const rows = (opts.run === undefined
      ? this.#st.lastLines.all(mac, limit)
      : this.#db.prepare('SELECT line FROM logs WHERE mac = ? AND run_id = ? ORDER BY id DESC LIMIT ?').all(mac, opts.run, limit)) as { line: string }[];
    return rows.map((r) => r.line).reverse();
  }

  /** Figures for /metrics, from every run ever recorded. */
  runTotals(): { action: string; result: string; count: number; bytes: number; seconds: number }[] {
    return this.#db.prepare(`SELECT COALESCE(result_action, 'unknown') AS action,
        CASE WHEN ok = 1 THEN 'ok' WHEN ok = 0 THEN 'failed' ELSE 'unfinished' END AS result,
        COUNT(*) AS count, COALESCE(SUM(bytes), 0) AS bytes, COALESCE(SUM(seconds), 0) AS seconds
      FROM runs WHERE ended IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2`).all() as { action: string; result: string; count: number; bytes: number; seconds: number }[];
  }

  runDurations(): { action: string; seconds: number }[] {
    return this.#db.prepare("SELECT result_action AS action, seconds FROM runs WHERE ok IS NOT NULL AND seconds IS NOT NULL AND result_action IS NOT NULL").all() as { action: string; seconds: number }[];
  }

  // ---- retention ------------------------------------------------------------------------------

  /**
   * Delete log lines received before `maxAgeMs` ago, then cut each machine's log to
   * `maxBytesPerMachine` bytes of text (its oldest lines go first). Runs stay.
   */
  pruneLogs(retention: LogRetention): { byAge: number; bySize: number } {
    let byAge = 0;
    let bySize = 0;
    inTransaction(this.#db, () => {
      if (retention.maxAgeMs !== undefined && retention.maxAgeMs > 0) {
        byAge = Number(this.#db.prepare('DELETE FROM logs WHERE at < ?').run(this.#now() - retention.maxAgeMs).changes);
      }
      const max = retention.maxBytesPerMachine;
      if (max !== undefined && max > 0) {
        const over = this.#db.prepare('SELECT mac FROM logs GROUP BY mac HAVING SUM(LENGTH(CAST(line AS BLOB))) > ?').all(max) as { mac: string }[];
        // the newest line whose running total (newest first) passes the limit, and every older one, go
        const cut = this.#db.prepare(`DELETE FROM logs WHERE mac = :mac AND id <= (
            SELECT id FROM (SELECT id, SUM(LENGTH(CAST(line AS BLOB))) OVER (ORDER BY id DESC) AS newer FROM logs WHERE mac = :mac)
            WHERE newer > :max ORDER BY id DESC LIMIT 1)`);
        for (const { mac } of over) bySize += Number(cut.run({ mac, max }).changes);
      }
    });
    // the recent lines are read again from what is left
    if (byAge + bySize > 0) this.#recent.clear();
    return { byAge, bySize };
  }
}

function runOf(r: Record<string, string | number | null>): RunRecord {
  const opt = <T>(v: string | number | null, f: (x: string | number) => T): T | undefined => v === null ? undefined : f(v);
  return {
    id: Number(r.id), mac: String(r.mac), started: String(r.started), ended: opt(r.ended, String), action: opt(r.action, String),
    phase: opt(r.phase, String), phases: JSON.parse(String(r.phases)) as { phase: string; time: string }[],
    bytes: opt(r.bytes, Number), total: opt(r.total, Number), wireBytes: opt(r.wire_bytes, Number), rate: opt(r.rate, Number),
    ok: opt(r.ok, (x) => x === 1), code: opt(r.code, String), error: opt(r.error, String), diskState: opt(r.disk_state, String),
    seconds: opt(r.seconds, Number), sha256: opt(r.sha256, String), resultAction: opt(r.result_action, String),
  };
}
