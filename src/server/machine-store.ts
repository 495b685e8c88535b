// Machines: what each should do (its action, one-shot or persistent) and what its agent
// reported (runs, phases, progress, results, log lines). State lives in DIR/booty.db (db.ts) and
// survives a restart; actions may also be declared as files an operator edits:
//
//   DIR/machines/<aa-bb-cc-dd-ee-ff>.json   the machine's action (booty's, BOOTy's or combined form)
//   DIR/default.json                        optional action for MACs without one of their own
//
// Which wins: a MAC that has a file is managed by the file. The file is imported when the server
// starts, on reload (SIGHUP, POST /api/reload), and whenever an agent's fetch finds the file
// changed (a stat per fetch), so an edit applies at the next boot. API/CLI changes to such a
// machine are written into its file, so file and database never disagree. MACs without a file
// are managed through the API/CLI only (the database holds their action).
//
// One-shot: after a successful deploy, capture or wipe, the machine's next fetch gets `none`
// (boot from disk) instead of running the action again, unless the machine is persistent.
// Changing the action (API, CLI or an edited file) or `rearm` makes it run again.

import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { Action } from '../config/action.ts';
import type { AgentEvent, Phase } from '../config/report.ts';
import { parseAction, summarizeAction } from '../config/parse.ts';
import { BootyError, isBootyError } from '../util/errors.ts';
import { inTransaction } from './db.ts';
import { HttpError } from './http/http-error.ts';
import { normalizeMac } from './names.ts';

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

export interface ActionLookup {
  source: 'machine' | 'default';
  file: string;
  action: Action;
}

/** What an agent gets now: the action, or `none` because a one-shot action already ran. */
export interface ServedAction extends ActionLookup {
  /** set when the configured action was replaced by `none` (one-shot consumed at this time) */
  oneShotDone?: string;
  configured: Action;
}

export interface MachineSettings {
  /** the action (any accepted form); null removes the machine's own action */
  action?: unknown;
  persistent?: boolean;
  name?: string | null;
  /** run the (one-shot) action again */
  rearm?: boolean;
}

export type MachineChange =
  | { type: 'machine'; mac: string }
  | { type: 'log'; mac: string; lines: string[] }
  | { type: 'removed'; mac: string };

export interface RunRecord {
  id: number; mac: string; started: string; ended?: string; action?: string; phase?: string;
  phases: { phase: string; time: string }[]; bytes?: number; total?: number; wireBytes?: number; rate?: number;
  ok?: boolean; code?: string; error?: string; diskState?: string; seconds?: number; sha256?: string; resultAction?: string;
}

interface MachineRecord {
  mac: string;
  name?: string;
  action?: Action;
  managedBy?: 'file' | 'api';
  actionError?: string;
  fileSig?: string;
  persistent: boolean;
  oneShotDone?: string;
  created: string;
  updated: string;
  state: MachineState;
  /** the run events attach to, and whether it still runs (no result yet) */
  runId?: number;
  runOpen: boolean;
  runPhases: { phase: string; time: string }[];
  recent?: string[];
}

const RECENT_LINES = 200;
const SAVE_DELAY_MS = 1000;
/** results that consume a one-shot action */
const ONE_SHOT_ACTIONS = new Set(['deploy', 'capture', 'wipe']);
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

function fileSigOf(st: { size: bigint; mtimeNs: bigint; ino: bigint }): string {
  return `${st.size}:${st.mtimeNs}:${st.ino}`;
}

async function sigOf(file: string): Promise<string | undefined> {
  try { return fileSigOf(await stat(file, { bigint: true })); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

function noneInsteadOf(a: Action): Action {
  return { action: 'none', after: a.after, onError: a.onError, wipeOnError: false, dryRun: false };
}

export class MachineStore {
  readonly dataDir: string;
  readonly machinesDir: string;
  readonly defaultFile: string;
  readonly #db: DatabaseSync;
  readonly #machines = new Map<string, MachineRecord>();
  readonly #dirty = new Set<string>();
  readonly #listeners = new Set<(c: MachineChange) => void>();
  #default: { sig?: string; action?: Action; error?: string } = {};
  #timer: NodeJS.Timeout | undefined;
  #st!: Record<string, StatementSync>;

  constructor(dataDir: string, db: DatabaseSync) {
    this.dataDir = dataDir;
    this.machinesDir = join(dataDir, 'machines');
    this.defaultFile = join(dataDir, 'default.json');
    this.#db = db;
  }

  async init(): Promise<void> {
    await mkdir(this.machinesDir, { recursive: true });
    const db = this.#db;
    this.#st = {
      upsertMachine: db.prepare(`INSERT INTO machines (mac, name, action, managed_by, action_error, file_sig, persistent, one_shot_done, created, updated, state)
        VALUES (:mac, :name, :action, :managed_by, :action_error, :file_sig, :persistent, :one_shot_done, :created, :updated, :state)
        ON CONFLICT (mac) DO UPDATE SET name = :name, action = :action, managed_by = :managed_by, action_error = :action_error, file_sig = :file_sig,
          persistent = :persistent, one_shot_done = :one_shot_done, updated = :updated, state = :state`),
      saveState: db.prepare('UPDATE machines SET state = ? WHERE mac = ?'),
      deleteMachine: db.prepare('DELETE FROM machines WHERE mac = ?'),
      startRun: db.prepare('INSERT INTO runs (mac, started, action, phase, phases) VALUES (?, ?, ?, ?, ?)'),
      runPhase: db.prepare('UPDATE runs SET phase = ?, phases = ? WHERE id = ?'),
      runProgress: db.prepare('UPDATE runs SET bytes = ?, total = ?, wire_bytes = ?, rate = ? WHERE id = ?'),
      runResult: db.prepare(`UPDATE runs SET ended = ?, ok = ?, code = ?, error = ?, disk_state = ?, seconds = ?, sha256 = ?,
        bytes = COALESCE(?, bytes), result_action = ?, phase = ?, phases = ? WHERE id = ?`),
      closeRun: db.prepare('UPDATE runs SET ended = ? WHERE id = ? AND ended IS NULL'),
      addLog: db.prepare('INSERT INTO logs (mac, run_id, line) VALUES (?, ?, ?)'),
    };
    const rows = db.prepare('SELECT * FROM machines').all() as Record<string, string | number | null>[];
    const lastRuns = new Map<string, { id: number; ended: string | null; phases: string }>();
    for (const r of db.prepare('SELECT mac, id, ended, phases FROM runs WHERE id IN (SELECT MAX(id) FROM runs GROUP BY mac)').all() as { mac: string; id: number; ended: string | null; phases: string }[]) {
      lastRuns.set(r.mac, r);
    }
    for (const r of rows) {
      const mac = String(r.mac);
      const run = lastRuns.get(mac);
      let action: Action | undefined;
      try { action = r.action === null ? undefined : parseAction(String(r.action)); } catch { action = undefined; }
      let state: MachineState = { mac, events: 0 };
      try { if (r.state !== null) state = { ...JSON.parse(String(r.state)) as MachineState, mac }; } catch { /* a damaged row only loses its last state */ }
      this.#machines.set(mac, {
        mac, name: r.name === null ? undefined : String(r.name), action,
        managedBy: r.managed_by === null ? undefined : r.managed_by as 'file' | 'api',
        actionError: r.action_error === null ? undefined : String(r.action_error),
        fileSig: r.file_sig === null ? undefined : String(r.file_sig),
        persistent: r.persistent === 1, oneShotDone: r.one_shot_done === null ? undefined : String(r.one_shot_done),
        created: String(r.created), updated: String(r.updated), state,
        runId: run?.id, runOpen: run !== undefined && run.ended === null,
        runPhases: run === undefined ? [] : JSON.parse(run.phases) as { phase: string; time: string }[],
      });
    }
    await this.#importStateDir();
    await this.reload();
  }

  /** The per-file state of the previous server version (DIR/state/<mac>.json, .log), imported once. */
  async #importStateDir(): Promise<void> {
    const done = this.#db.prepare("SELECT value FROM meta WHERE key = 'state-dir-imported'").get();
    if (done !== undefined) return;
    const dir = join(this.dataDir, 'state');
    let files: string[] = [];
    try { files = await readdir(dir); } catch { /* nothing to import */ }
    for (const f of files) {
      const mac = f.endsWith('.json') ? normalizeMac(f.slice(0, -5)) : undefined;
      if (mac === undefined || this.#machines.has(mac)) continue;
      try {
        const s = JSON.parse(await readFile(join(dir, f), 'utf8')) as MachineState;
        const rec = this.#ensure(mac);
        rec.state = { ...s, mac };
        const lines = (await readFile(join(dir, `${mac}.log`), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
        inTransaction(this.#db, () => {
          this.#saveMachine(rec);
          for (const l of lines) this.#st.addLog.run(mac, null, l);
        });
      } catch { /* a damaged state file only loses history */ }
    }
    this.#db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('state-dir-imported', ?)").run(new Date().toISOString());
  }

  actionFile(mac: string): string { return join(this.machinesDir, `${mac}.json`); }

  onChange(fn: (c: MachineChange) => void): () => void {
    this.#listeners.add(fn);
    return () => { this.#listeners.delete(fn); };
  }

  #emit(c: MachineChange): void {
    for (const fn of this.#listeners) {
      try { fn(c); } catch { /* a listener's trouble is not the store's */ }
    }
  }

  #ensure(mac: string): MachineRecord {
    let rec = this.#machines.get(mac);
    if (rec === undefined) {
      const now = new Date().toISOString();
      rec = { mac, persistent: false, created: now, updated: now, state: { mac, events: 0 }, runOpen: false, runPhases: [] };
      this.#machines.set(mac, rec);
    }
    return rec;
  }

  #saveMachine(rec: MachineRecord): void {
    this.#st.upsertMachine.run({
      mac: rec.mac, name: rec.name ?? null, action: rec.action === undefined ? null : JSON.stringify(rec.action),
      managed_by: rec.managedBy ?? null, action_error: rec.actionError ?? null, file_sig: rec.fileSig ?? null,
      persistent: rec.persistent ? 1 : 0, one_shot_done: rec.oneShotDone ?? null, created: rec.created, updated: rec.updated,
      state: JSON.stringify(rec.state),
    });
    this.#dirty.delete(rec.mac);
  }

  // ---- declarative files ----------------------------------------------------------------------

  /** Import DIR/machines/<mac>.json when it changed since the last import (or vanished). */
  async #syncFile(mac: string): Promise<boolean> {
    const file = this.actionFile(mac);
    const sig = await sigOf(file);
    const rec = this.#machines.get(mac);
    if (sig === undefined) {
      if (rec === undefined || rec.managedBy !== 'file') return false;
      // the file was removed: so is the machine's own action (its history stays)
      Object.assign(rec, { action: undefined, actionError: undefined, managedBy: undefined, fileSig: undefined, updated: new Date().toISOString() });
      this.#saveMachine(rec);
      return true;
    }
    if (rec?.fileSig === sig) return false;
    let text: string;
    try { text = await readFile(file, 'utf8'); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
    const r = this.#ensure(mac);
    try {
      r.action = parseAction(text);
      r.actionError = undefined;
    } catch (e) {
      if (!isBootyError(e)) throw e;
      r.action = undefined;
      r.actionError = `${file}: ${e.message}`;
    }
    r.managedBy = 'file';
    r.fileSig = sig;
    r.oneShotDone = undefined; // an edited file means: run it
    r.updated = new Date().toISOString();
    this.#saveMachine(r);
    return true;
  }

  async #syncDefault(): Promise<void> {
    const sig = await sigOf(this.defaultFile);
    if (sig === this.#default.sig) return;
    if (sig === undefined) { this.#default = {}; return; }
    const text = await readFile(this.defaultFile, 'utf8').catch(() => undefined);
    if (text === undefined) { this.#default = {}; return; }
    try { this.#default = { sig, action: parseAction(text) }; } catch (e) {
      if (!isBootyError(e)) throw e;
      this.#default = { sig, error: `${this.defaultFile}: ${e.message}` };
    }
  }

  /** Re-read every action file and default.json; returns what changed. */
  async reload(): Promise<{ changed: string[]; errors: string[] }> {
    const macs = new Set<string>();
    for (const f of await readdir(this.machinesDir)) {
      const mac = f.endsWith('.json') ? normalizeMac(f.slice(0, -5)) : undefined;
      if (mac !== undefined && f === `${mac}.json`) macs.add(mac);
    }
    for (const r of this.#machines.values()) if (r.managedBy === 'file') macs.add(r.mac);
    const changed: string[] = [];
    for (const mac of [...macs].sort()) {
      if (await this.#syncFile(mac)) { changed.push(mac); this.#emit({ type: 'machine', mac }); }
    }
    this.#default.sig = undefined;
    await this.#syncDefault();
    const errors = [...this.#machines.values()].filter((r) => r.actionError !== undefined).map((r) => r.actionError as string);
    if (this.#default.error !== undefined) errors.push(this.#default.error);
    return { changed, errors };
  }

  // ---- actions ----------------------------------------------------------------------------------

  /**
   * The configured action for `mac`: its own, else default.json, else undefined. An action file
   * that does not validate throws BootyError (stage 'config') naming the file and the field, so
   * a broken action is never served.
   */
  async actionFor(mac: string): Promise<ActionLookup | undefined> {
    await this.#syncFile(mac);
    const rec = this.#machines.get(mac);
    const broken = (message: string) => new BootyError({ stage: 'config', code: 'CONFIG_FIELD', message, hint: 'fix the file; the server will not serve a broken action' });
    if (rec?.actionError !== undefined) throw broken(rec.actionError);
    if (rec?.action !== undefined) return { source: 'machine', file: this.actionFile(mac), action: rec.action };
    await this.#syncDefault();
    if (this.#default.error !== undefined) throw broken(this.#default.error);
    if (this.#default.action !== undefined) return { source: 'default', file: this.defaultFile, action: this.#default.action };
    return undefined;
  }

  /** What an agent fetching its action gets now (one-shot rule applied). */
  async servedActionFor(mac: string): Promise<ServedAction | undefined> {
    const found = await this.actionFor(mac);
    if (found === undefined) return undefined;
    const rec = this.#machines.get(mac);
    if (rec?.oneShotDone !== undefined && !rec.persistent && ONE_SHOT_ACTIONS.has(found.action.action)) {
      return { ...found, action: noneInsteadOf(found.action), configured: found.action, oneShotDone: rec.oneShotDone };
    }
    return { ...found, configured: found.action };
  }

  /** Validate and store an action (normalized booty form). Throws BootyError naming the field. */
  async setAction(mac: string, input: unknown): Promise<Action> {
    await this.update(mac, { action: input });
    return this.#machines.get(mac)!.action!;
  }

  async deleteAction(mac: string): Promise<boolean> {
    await this.#syncFile(mac);
    const rec = this.#machines.get(mac);
    if (rec === undefined || (rec.action === undefined && rec.actionError === undefined)) return false;
    await this.update(mac, { action: null });
    return true;
  }

  /** Create or change a machine. `create: true` refuses an existing one (409). */
  async update(mac: string, s: MachineSettings, opts: { create?: boolean } = {}): Promise<void> {
    await this.#syncFile(mac);
    const existing = this.#machines.get(mac);
    if (opts.create === true && existing !== undefined && (existing.action !== undefined || existing.managedBy !== undefined || existing.name !== undefined)) {
      throw new HttpError(409, `machine ${mac} already exists; use "booty machines set" (PUT /api/machines/${mac}) to change it`);
    }
    // validate before touching anything
    const action = s.action === undefined || s.action === null ? undefined : parseAction(s.action);
    const rec = this.#ensure(mac);
    const file = this.actionFile(mac);
    if (s.action !== undefined) {
      if (rec.managedBy === 'file') {
        if (action === undefined) await unlink(file).catch(() => {});
        else await writeAtomically(file, JSON.stringify(action, null, 2) + '\n');
        rec.fileSig = action === undefined ? undefined : await sigOf(file);
        rec.managedBy = action === undefined ? undefined : 'file';
      } else {
        rec.managedBy = action === undefined ? undefined : 'api';
      }
      rec.action = action;
      rec.actionError = undefined;
      rec.oneShotDone = undefined;
    }
    if (s.persistent !== undefined) rec.persistent = s.persistent;
    if (s.name !== undefined) rec.name = s.name === null || s.name === '' ? undefined : s.name;
    if (s.rearm === true) rec.oneShotDone = undefined;
    rec.updated = new Date().toISOString();
    this.#saveMachine(rec);
    this.#emit({ type: 'machine', mac });
  }

  /** Forget a machine: its action (and file), and with `history` its runs and log too. */
  async remove(mac: string, opts: { history?: boolean } = {}): Promise<boolean> {
    await this.#syncFile(mac);
    const rec = this.#machines.get(mac);
    if (rec === undefined) return false;
    if (rec.managedBy === 'file') await unlink(this.actionFile(mac)).catch(() => {});
    inTransaction(this.#db, () => {
      this.#st.deleteMachine.run(mac);
      if (opts.history === true) {
        this.#db.prepare('DELETE FROM runs WHERE mac = ?').run(mac);
        this.#db.prepare('DELETE FROM logs WHERE mac = ?').run(mac);
      }
    });
    this.#machines.delete(mac);
    this.#dirty.delete(mac);
    this.#emit({ type: 'removed', mac });
    return true;
  }

  /** Machines whose own action (or default.json) names `imageName` (deploy source or capture target, by URL path /images/<name>). */
  referencesTo(imageName: string, kinds: ('deploy' | 'capture')[] = ['deploy', 'capture']): string[] {
    const uses = (a: Action | undefined) => {
      if (a === undefined) return false;
      const url = a.action === 'deploy' && kinds.includes('deploy') ? a.image : a.action === 'capture' && kinds.includes('capture') ? a.upload : undefined;
      if (url === undefined) return false;
      try {
        const segs = new URL(url).pathname.split('/');
        return decodeURIComponent(segs[segs.length - 1]) === imageName && segs[segs.length - 2] === 'images';
      } catch { return false; }
    };
    const out = [...this.#machines.values()].filter((r) => uses(r.action)).map((r) => r.mac);
    if (uses(this.#default.action)) out.push('default.json');
    return out;
  }

  // ---- agent reports ------------------------------------------------------------------------------

  /** Apply a batch of events from one agent (runs, phases, log lines) in one transaction. */
  async record(mac: string, events: AgentEvent[]): Promise<MachineState> {
    const now = new Date().toISOString();
    const rec = this.#ensure(mac);
    const s = rec.state;
    s.firstSeen ??= now;
    const lines: string[] = [];
    let important = false;
    let configured: Action | undefined;
    try { configured = (await this.actionFor(mac))?.action; } catch { configured = undefined; }
    inTransaction(this.#db, () => {
      for (const e of events) {
        s.events++;
        const startsRun = rec.runId === undefined
          || (e.type === 'phase' && e.phase === 'booting')
          || (!rec.runOpen && (e.type === 'progress' || (e.type === 'phase' && !AFTER_RESULT_PHASES.has(e.phase))));
        if (startsRun) {
          if (rec.runOpen && rec.runId !== undefined) this.#st.closeRun.run(e.time, rec.runId);
          rec.runPhases = [];
          const what = rec.oneShotDone !== undefined && !rec.persistent && configured !== undefined && ONE_SHOT_ACTIONS.has(configured.action)
            ? 'none (one-shot action done)' : configured === undefined ? undefined : summarizeAction(configured);
          rec.runId = Number(this.#st.startRun.run(mac, e.time, what ?? null, e.type === 'phase' ? e.phase : null, '[]').lastInsertRowid);
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
            if (e.ok && ONE_SHOT_ACTIONS.has(e.action) && !rec.persistent && configured !== undefined && configured.action === e.action) {
              rec.oneShotDone = e.time;
              rec.updated = now;
            }
            important = true;
            break;
          }
          case 'log':
            break;
        }
        const line = logLineFor(e);
        if (line !== undefined) {
          lines.push(line);
          this.#st.addLog.run(mac, runId, line);
        }
      }
      s.lastSeen = now;
      if (important) this.#saveMachine(rec);
    });
    if (lines.length > 0) {
      const recent = this.#recentOf(mac);
      recent.push(...lines);
      if (recent.length > RECENT_LINES) recent.splice(0, recent.length - RECENT_LINES);
      this.#emit({ type: 'log', mac, lines });
    }
    if (!important) {
      this.#dirty.add(mac);
      this.#timer ??= setTimeout(() => { this.#timer = undefined; void this.flush(); }, SAVE_DELAY_MS);
    }
    this.#emit({ type: 'machine', mac });
    return s;
  }

  #recentOf(mac: string): string[] {
    const rec = this.#ensure(mac);
    if (rec.recent === undefined) {
      const rows = this.#db.prepare('SELECT line FROM logs WHERE mac = ? ORDER BY id DESC LIMIT ?').all(mac, RECENT_LINES) as { line: string }[];
      rec.recent = rows.map((r) => r.line).reverse();
    }
    return rec.recent;
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
          const rec = this.#machines.get(mac);
          if (rec === undefined) continue;
          this.#st.saveState.run(JSON.stringify(rec.state), mac);
          const p = rec.state.progress;
          if (p !== undefined && rec.runId !== undefined && rec.runOpen) this.#st.runProgress.run(p.bytes, p.total ?? null, p.wireBytes ?? null, p.rate, rec.runId);
        }
      });
    } catch (e) {
      process.stderr.write(`booty server: warn: could not save machine state: ${(e as Error).message}\n`);
    }
  }

  // ---- reading --------------------------------------------------------------------------------

  #summaryOf(rec: MachineRecord, served: ServedAction | undefined, servedError: string | undefined): Record<string, unknown> {
    return {
      ...rec.state,
      name: rec.name,
      hasOwnAction: rec.action !== undefined || rec.actionError !== undefined,
      action: served === undefined ? undefined : summarizeAction(served.configured),
      actionSource: served?.source,
      actionError: servedError,
      managedBy: rec.managedBy,
      persistent: rec.persistent,
      oneShotDone: rec.oneShotDone,
      next: served === undefined ? undefined : summarizeAction(served.action),
      run: rec.runId,
      recentLog: this.#recentOf(rec.mac).slice(-5),
    };
  }

  async #summary(mac: string): Promise<Record<string, unknown>> {
    let served: ServedAction | undefined;
    let err: string | undefined;
    try { served = await this.servedActionFor(mac); } catch (e) { err = (e as Error).message; }
    return this.#summaryOf(this.#ensure(mac), served, err);
  }

  /** Every machine that has an action (file or API) or has reported, with its last state. */
  async list(): Promise<Record<string, unknown>[]> {
    await this.reload();
    const out = [];
    for (const mac of [...this.#machines.keys()].sort()) out.push(await this.#summary(mac));
    return out;
  }

  async summary(mac: string): Promise<Record<string, unknown> | undefined> {
    await this.#syncFile(mac);
    return this.#machines.has(mac) ? this.#summary(mac) : undefined;
  }

  async get(mac: string, lines = 100): Promise<Record<string, unknown> | undefined> {
    const sum = await this.summary(mac);
    if (sum === undefined) return undefined;
    const rows = this.#db.prepare('SELECT line FROM logs WHERE mac = ? ORDER BY id DESC LIMIT ?').all(mac, lines) as { line: string }[];
    const rec = this.#machines.get(mac)!;
    return { ...sum, configuredAction: rec.action, log: rows.map((r) => r.line).reverse() };
  }

  runs(mac: string, limit = 50): RunRecord[] {
    const rows = this.#db.prepare('SELECT * FROM runs WHERE mac = ? ORDER BY id DESC LIMIT ?').all(mac, limit) as Record<string, string | number | null>[];
    return rows.map(runOf);
  }

  /** Log lines of a machine (or one of its runs), oldest first, `limit` newest at most. */
  log(mac: string, opts: { run?: number; limit?: number } = {}): string[] {
    const limit = opts.limit ?? 100_000;
    const rows = (opts.run === undefined
      ? this.#db.prepare('SELECT line FROM logs WHERE mac = ? ORDER BY id DESC LIMIT ?').all(mac, limit)
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

  /** Machines in each phase right now, and runs moving data. */
  phaseCounts(): Map<string, number> {
    const m = new Map<string, number>();
    for (const r of this.#machines.values()) {
      const p = r.state.phase ?? 'unknown';
      m.set(p, (m.get(p) ?? 0) + 1);
    }
    return m;
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
