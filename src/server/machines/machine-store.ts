// The machines, as routes and the live stream see them: the action source (what each machine
// should do: action-source.ts) and the run recorder (what its agent reported: run-recorder.ts)
// over one database, joined into summaries (machine-summary.ts). A machine is known when either
// half knows it. Reporting is where the halves meet: a run is labelled with the action served,
// and a successful result consumes a one-shot action, in the recorder's transaction.

import type { DatabaseSync } from 'node:sqlite';
import type { Action } from '../../config/action.ts';
import type { AgentEvent } from '../../config/report.ts';
import { inTransaction } from '../db.ts';
import { ActionSource } from './action-source.ts';
import type { ServedAction } from './action-source.ts';
import { MachineChanges } from './changes.ts';
import type { MachineChange } from './changes.ts';
import { summarize } from './machine-summary.ts';
import type { MachineDetail, MachineSummary } from './machine-summary.ts';
import { RunRecorder } from './run-recorder.ts';
import { InventoryStore } from './inventory-store.ts';
import type { MachineInventory } from '../../config/inventory.ts';
import type { MachineState } from './run-recorder.ts';
import { RunSamples } from './run-samples.ts';
import { TrialStore } from './trial-store.ts';
import { confirm, decide, describeTrial, expire, startTrial, type ConfirmOutcome, type TrialRecord } from './trial-boot.ts';

export class MachineStore {
  readonly actions: ActionSource;
  readonly recorder: RunRecorder;
  readonly #db: DatabaseSync;
  readonly #changes = new MachineChanges();

  readonly inventory: InventoryStore;
  /** each run's progress samples (the dashboard's throughput chart) */
  readonly samples: RunSamples;
  readonly trials: TrialStore;
  readonly #now: () => number;

  /** `now`: the clock of log retention and trial deadlines (tests); `defaultAction`: --default-action */
  constructor(dataDir: string, db: DatabaseSync, opts: { now?: () => number; defaultAction?: Action } = {}) {
    this.#db = db;
    this.#now = opts.now ?? Date.now;
    this.actions = new ActionSource(dataDir, db, this.#changes, opts.defaultAction);
    this.recorder = new RunRecorder(dataDir, db, this.#changes, opts);
    this.inventory = new InventoryStore(db);
    this.samples = new RunSamples(db);
    this.trials = new TrialStore(db);
  }

  // ---- trial boots (trial-boot.ts: the state machine; here where it meets the store) ----------

  /** The machine's trial, if it still belongs to its configured action and one-shot state (an
   *  operator's change ends it), with an overdue pending one expired: saved and logged once. */
  #trial(mac: string, configured: Action): TrialRecord | undefined {
    const t = this.trials.get(mac);
    if (t === undefined || t.actionKey !== JSON.stringify(configured) || (t.oneShot ?? null) !== (this.actions.record(mac)?.oneShotDone ?? null)) return undefined;
    const now = expire(t, this.#now());
    if (now !== t) {
      this.trials.put(now);
      this.recorder.note(mac, `${new Date(this.#now()).toISOString()} error ${now.failure ?? ''}`);
    }
    return now;
  }

  /** What the machine's netboot gets now (iPXE script, the agent's action): the configured action
   *  with the one-shot rule, unless a trial boot decides (pending: `none`; failed: onTrialFailure). */
  async served(mac: string): Promise<(ServedAction & { trial?: string }) | undefined> {
    const served = await this.actions.servedActionFor(mac);
    if (served === undefined) return undefined;
    const t = this.#trial(mac, served.configured);
    if (t === undefined) return served;
    const d = decide(t, served.configured, this.#now());
    const trial = describeTrial(t, this.#now());
    if (d.kind === 'wait') {
      const a = served.configured;
      return { ...served, action: { action: 'none', after: a.after, onError: a.onError, wipeOnError: false, dryRun: false }, trial };
    }
    if (d.kind === 'failure') return { ...served, action: d.action, trial };
    return served;
  }

  /** The deployed OS confirms its trial boot (POST /api/machines/<mac>/trial). */
  async confirmTrial(mac: string, by: string | undefined): Promise<ConfirmOutcome> {
    let configured: Action | undefined;
    try { configured = (await this.actions.actionFor(mac))?.action; } catch { configured = undefined; }
    const t = configured === undefined ? undefined : this.#trial(mac, configured);
    const r = confirm(t, this.#now(), by);
    if (r.ok && r.trial !== t) {
      this.trials.put(r.trial);
      this.recorder.note(mac, `${r.trial.confirmedAt} info ${describeTrial(r.trial, this.#now())}`);
    } else if (!r.ok) {
      this.recorder.note(mac, `${new Date(this.#now()).toISOString()} warn trial boot confirmation refused: ${r.message}`);
    }
    return r;
  }

  /** A result arrived (inside the recorder's transaction, after the one-shot rule): a successful
   *  trial deploy starts a trial; the forensic capture of a failed one marks it handled. */
  #trialResult(mac: string, e: Extract<AgentEvent, { type: 'result' }>, configured: Action | undefined): void {
    if (!e.ok || configured?.action !== 'deploy' || configured.bootOrder !== 'trial' || configured.dryRun) return;
    const previous = this.trials.get(mac);
    if (e.action === 'deploy') {
      const t = startTrial({ mac, nowMs: this.#now(), action: configured, actionKey: JSON.stringify(configured), oneShot: this.actions.record(mac)?.oneShotDone, previous });
      this.trials.put(t);
    } else if (e.action === 'capture' && previous?.state === 'failed' && previous.onFailure === 'capture' && previous.actionKey === JSON.stringify(configured)) {
      this.trials.put({ ...previous, state: 'handled' });
    }
  }

  /** An agent's inventory (validated by the route): stored, and the machine's summary changes. */
  putInventory(mac: string, inv: MachineInventory): void {
    this.inventory.put(mac, inv);
    this.#changes.emit({ type: 'machine', mac });
  }

  async init(): Promise<void> {
    await this.actions.init();
    await this.recorder.init();
    await this.actions.reload();
  }

  onChange(fn: (c: MachineChange) => void): () => void { return this.#changes.on(fn); }

  #known(mac: string): boolean { return this.actions.record(mac) !== undefined || this.recorder.state(mac) !== undefined || this.inventory.has(mac); }

  #macs(): string[] { return [...new Set([...this.actions.macs(), ...this.recorder.macs(), ...this.inventory.macs()])].sort(); }

  /** Apply a batch of events from one agent: its runs and log, and the one-shot rule. */
  async record(mac: string, events: AgentEvent[]): Promise<MachineState> {
    let configured: Action | undefined;
    try { configured = (await this.actions.actionFor(mac))?.action; } catch { configured = undefined; }
    return this.recorder.record(mac, events, {
      runLabel: () => this.actions.runLabel(mac, configured),
      onResult: (e, now) => {
        this.actions.resultReported(mac, e, configured, now);
        const runId = this.recorder.runId(mac);
        if (runId !== undefined) this.samples.result(runId, e);
        this.#trialResult(mac, e, configured);
      },
      onProgress: (runId, e) => this.samples.progress(runId, e),
    });
  }

  /** Forget a machine: its action (and file), and with `history` its runs and log too. */
  async remove(mac: string, opts: { history?: boolean } = {}): Promise<boolean> {
    await this.actions.syncFile(mac);
    if (!this.#known(mac)) return false;
    await this.actions.removeFile(mac);
    const runIds = opts.history === true ? this.recorder.runs(mac, Number.MAX_SAFE_INTEGER).map((r) => r.id) : [];
    inTransaction(this.#db, () => {
      this.samples.forget(runIds);
      this.actions.forget(mac);
      this.recorder.forget(mac, opts);
      this.inventory.forget(mac);
      this.trials.forget(mac);
    });
    this.#changes.emit({ type: 'removed', mac });
    return true;
  }

  async #summary(mac: string): Promise<MachineSummary> {
    let served: ServedAction | undefined;
    let servedError: string | undefined;
    try { served = await this.served(mac); } catch (e) { servedError = (e as Error).message; }
    const t = served === undefined ? undefined : this.#trial(mac, served.configured);
    return summarize({
      mac, state: this.recorder.state(mac), inventory: this.actions.record(mac), served, servedError,
      runId: this.recorder.runId(mac), recentLog: this.recorder.recentLog(mac), hardware: this.inventory.get(mac),
      ...(t === undefined ? {} : { trial: { ...t, message: describeTrial(t, this.#now()) } }),
    });
  }

  /** Every machine that has an action (file or API) or has reported, with its last state. */
  async list(): Promise<MachineSummary[]> {
    await this.actions.reload();
    const out = [];
    for (const mac of this.#macs()) out.push(await this.#summary(mac));
    return out;
  }

  async summary(mac: string): Promise<MachineSummary | undefined> {
    await this.actions.syncFile(mac);
    return this.#known(mac) ? this.#summary(mac) : undefined;
  }

  async get(mac: string, lines = 100): Promise<MachineDetail | undefined> {
    const sum = await this.summary(mac);
    if (sum === undefined) return undefined;
    return { ...sum, configuredAction: this.actions.record(mac)?.action, log: this.recorder.log(mac, { limit: lines }), inventory: this.inventory.get(mac)?.inventory };
  }

  /** Machines in each phase right now (those that never reported: "unknown"). */
  phaseCounts(): Map<string, number> {
    const m = new Map<string, number>();
    for (const mac of this.#macs()) {
      const p = this.recorder.state(mac)?.phase ?? 'unknown';
      m.set(p, (m.get(p) ?? 0) + 1);
    }
    return m;
  }
}
