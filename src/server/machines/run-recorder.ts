// The run recorder: what agents reported. Each machine's last state (phase, progress, result,
// seen times), its runs (one per boot of the agent: phases, bytes, rate, result) and its log
// lines, in the state store (src/server/store/: booty.db, or PostgreSQL shared by replicas), so
// all of it survives a restart. Each batch of events is one transaction that first takes the
// machine's row lock and reads its state and latest run there: nothing is cached in the process,
// so a batch retried through another replica continues where the first one left off.
//
// Log retention: lines older than `maxAgeMs` go, and a machine's log is cut (oldest lines
// first) to `maxBytesPerMachine` of text; pruneLogs() runs at start and every hour (server.ts).

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentEvent, Phase } from '../../config/report.ts';
import { normalizeMac } from '../names.ts';
import type { StateStore, StoreTx } from '../store/state-store.ts';
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
  /** what a run starting now does, in words (asked at each run start, inside the transaction) */
  runLabel(tx: StoreTx): Promise<string | undefined>;
  /** a result of run `runId` arrived; called inside the recorder's transaction */
  onResult(tx: StoreTx, e: Extract<AgentEvent, { type: 'result' }>, now: string, runId: number): Promise<void>;
  /** a progress report of run `runId`; called inside the recorder's transaction (run-samples.ts) */
  onProgress?(tx: StoreTx, runId: number, e: Extract<AgentEvent, { type: 'progress' }>): Promise<void>;
}

/** the lines of a machine's log its summary shows */
const RECENT_LINES = 5;
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
  readonly #store: StateStore;
  readonly #changes: MachineChanges;
  readonly #now: () => number;

  /** `now`: the clock log lines are stamped with (tests age them) */
  constructor(dataDir: string, store: StateStore, changes: MachineChanges, opts: { now?: () => number } = {}) {
    this.#dataDir = dataDir;
    this.#store = store;
    this.#changes = changes;
    this.#now = opts.now ?? Date.now;
  }

  async init(): Promise<void> {
    await this.#importStateDir();
  }

  /** The per-file state of the previous server version (DIR/state/<mac>.json, .log), imported once. */
  async #importStateDir(): Promise<void> {
    if (await this.#store.meta.get('state-dir-imported') !== undefined) return;
    const dir = join(this.#dataDir, 'state');
    let files: string[] = [];
    try { files = await readdir(dir); } catch { /* nothing to import */ }
    for (const f of files) {
      const mac = f.endsWith('.json') ? normalizeMac(f.slice(0, -5)) : undefined;
      if (mac === undefined) continue;
      try {
        const s = JSON.parse(await readFile(join(dir, f), 'utf8')) as MachineState;
        const lines = (await readFile(join(dir, `${mac}.log`), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
        await this.#store.transaction(async (tx) => {
          if (await tx.machines.state(mac) !== undefined) return;
          const now = new Date().toISOString();
          await tx.machines.saveState(mac, JSON.stringify({ ...s, mac }), now);
          await tx.logs.add(mac, undefined, lines, this.#now());
        });
      } catch { /* a damaged state file only loses history */ }
    }
    await this.#store.meta.set('state-dir-imported', new Date().toISOString());
  }

  /** Machines that reported (or were imported). */
  async macs(): Promise<string[]> { return (await this.#store.machines.states()).map((s) => s.mac); }

  /** The machine's last reported state; undefined for a machine that never reported. */
  async state(mac: string): Promise<MachineState | undefined> { return stateOf(mac, await this.#store.machines.state(mac)); }

  /** Every machine's last reported state, by MAC. */
  async states(): Promise<Map<string, MachineState>> {
    const m = new Map<string, MachineState>();
    for (const r of await this.#store.machines.states()) {
      const s = stateOf(r.mac, r.state);
      if (s !== undefined) m.set(r.mac, s);
    }
    return m;
  }

  /** The run its events attach to (the latest). */
  async runId(mac: string): Promise<number | undefined> { return this.#store.runs.latestId(mac); }

  /** Apply a batch of events from one agent (runs, phases, log lines) in one transaction. */
  async record(mac: string, events: AgentEvent[], hooks: RecordHooks): Promise<MachineState> {
    const now = new Date().toISOString();
    const at = this.#now();
    const lines: string[] = [];
    const s = await this.#store.transaction(async (tx) => {
      lines.length = 0;
      await tx.machines.lock(mac, now);
      const s = stateOf(mac, await tx.machines.state(mac)) ?? { mac, events: 0 };
      const last = await tx.runs.latest(mac);
      let runId = last?.id;
      let runOpen = last !== undefined && last.ended === undefined;
      let runPhases = last?.phases ?? [];
      let runEnded = last?.ended;
      s.firstSeen ??= now;
      for (const e of events) {
        s.events++;
        // an event from before the last run ended belongs to it: a batch sent again because its
        // answer was lost (retried, maybe through another replica), not a new run
        const late = runEnded !== undefined && Date.parse(e.time) <= Date.parse(runEnded);
        const startsRun = runId === undefined
          || (e.type === 'phase' && e.phase === 'booting')
          || (!runOpen && !late && (e.type === 'progress' || (e.type === 'phase' && !AFTER_RESULT_PHASES.has(e.phase))));
        if (startsRun) {
          // the same start again (a batch retried, maybe through another replica) joins the run it
          // started, and its events are applied again from there: the run ends as it did
          const run = await tx.runs.startOrJoin(mac, e.time, await hooks.runLabel(tx), e.type === 'phase' ? e.phase : undefined);
          runId = run.id;
          runOpen = true;
          runEnded = undefined;
          runPhases = [];
          // a new run: the previous result and progress no longer describe it
          s.result = undefined;
          s.progress = undefined;
        }
        const id = runId as number;
        switch (e.type) {
          case 'phase':
            if (s.phase !== e.phase) s.phaseSince = e.time;
            s.phase = e.phase;
            s.phaseDetail = e.detail;
            runPhases.push({ phase: e.phase, time: e.time });
            await tx.runs.setPhase(id, e.phase, runPhases);
            break;
          case 'progress':
            s.progress = e;
            await hooks.onProgress?.(tx, id, e);
            break;
          case 'result': {
            s.result = e;
            s.phase = e.ok ? 'done' : 'failed';
            s.phaseSince = e.time;
            runPhases.push({ phase: s.phase, time: e.time });
            // the last progress first: the result's own byte count, when it has one, wins
            if (s.progress !== undefined) await tx.runs.setProgress(id, s.progress);
            await tx.runs.setResult(id, {
              ended: e.time, ok: e.ok, code: e.code, error: e.message, diskState: e.diskState, seconds: e.seconds,
              sha256: e.sha256, bytes: e.bytes, resultAction: e.action, phase: s.phase, phases: runPhases,
            });
            runOpen = false;
            runEnded = e.time;
            await hooks.onResult(tx, e, now, id);
            break;
          }
          case 'log':
            break;
        }
        const line = logLineFor(e);
        if (line !== undefined) {
          lines.push(line);
          await tx.logs.add(mac, id, [line], at);
        }
      }
      if (s.progress !== undefined && runId !== undefined && runOpen) await tx.runs.setProgress(runId, s.progress);
      s.lastSeen = now;
      await tx.machines.saveState(mac, JSON.stringify(s), now);
      return s;
    });
    if (lines.length > 0) this.#changes.emit({ type: 'log', mac, lines });
    this.#changes.emit({ type: 'machine', mac });
    return s;
  }

  /** A line the server itself adds to a machine's log (in its latest run), e.g. a trial boot
   *  that was not confirmed: what an operator reads beside the agent's own lines. `tx`: write it
   *  in that transaction of the store (the caller emits nothing until it commits: see noted()). */
  async note(tx: StoreTx, mac: string, line: string): Promise<void> {
    await tx.logs.add(mac, await tx.runs.latestId(mac), [line], this.#now());
  }

  /** Tell the live stream about lines note() wrote, once their transaction committed. */
  noted(mac: string, lines: string[]): void {
    this.#changes.emit({ type: 'log', mac, lines });
    this.#changes.emit({ type: 'machine', mac });
  }

  /** The machine's last few log lines (as its summary shows them), oldest first. */
  async recentLog(mac: string): Promise<string[]> {
    return this.#store.logs.lines(mac, { limit: RECENT_LINES });
  }

  /** Forget what a machine reported (its row is deleted by the caller); `history`: its runs and log too. */
  async forget(tx: StoreTx, mac: string, opts: { history?: boolean } = {}): Promise<void> {
    if (opts.history === true) {
      await tx.runs.removeFor(mac);
      await tx.logs.removeFor(mac);
    }
  }

  // ---- reading --------------------------------------------------------------------------------

  async runs(mac: string, limit = 50): Promise<RunRecord[]> {
    return this.#store.runs.list(mac, limit);
  }

  /** Log lines of a machine (or one of its runs), oldest first, `limit` newest at most. */
  async log(mac: string, opts: { run?: number; limit?: number } = {}): Promise<string[]> {
    return this.#store.logs.lines(mac, opts);
  }

  /** Figures for /metrics, from every run ever recorded. */
  async runTotals(): Promise<{ action: string; result: string; count: number; bytes: number; seconds: number }[]> {
    return this.#store.runs.totals();
  }

  async runDurations(): Promise<{ action: string; seconds: number }[]> {
    return this.#store.runs.durations();
  }

  // ---- retention ------------------------------------------------------------------------------

  /**
   * Delete log lines received before `maxAgeMs` ago, then cut each machine's log to
   * `maxBytesPerMachine` bytes of text (its oldest lines go first). Runs stay.
   */
  async pruneLogs(retention: LogRetention): Promise<{ byAge: number; bySize: number }> {
    return this.#store.transaction(async (tx) => {
      let byAge = 0;
      let bySize = 0;
      if (retention.maxAgeMs !== undefined && retention.maxAgeMs > 0) byAge = await tx.logs.pruneOlderThan(this.#now() - retention.maxAgeMs);
      const max = retention.maxBytesPerMachine;
      if (max !== undefined && max > 0) bySize = await tx.logs.pruneToSize(max);
      return { byAge, bySize };
    });
  }
}

/** A machine's state as stored (JSON), or undefined (never reported, or a damaged row). */
function stateOf(mac: string, json: string | undefined): MachineState | undefined {
  if (json === undefined) return undefined;
  try { return { ...JSON.parse(json) as MachineState, mac }; } catch { return { mac, events: 0 }; }
}
