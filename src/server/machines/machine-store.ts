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

export class MachineStore {
  readonly actions: ActionSource;
  readonly recorder: RunRecorder;
  readonly #db: DatabaseSync;
  readonly #changes = new MachineChanges();

  readonly inventory: InventoryStore;
  /** each run's progress samples (the dashboard's throughput chart) */
  readonly samples: RunSamples;

  /** `now`: the recorder's clock for log retention (tests); `defaultAction`: --default-action */
  constructor(dataDir: string, db: DatabaseSync, opts: { now?: () => number; defaultAction?: Action } = {}) {
    this.#db = db;
    this.actions = new ActionSource(dataDir, db, this.#changes, opts.defaultAction);
    this.recorder = new RunRecorder(dataDir, db, this.#changes, opts);
    this.inventory = new InventoryStore(db);
    this.samples = new RunSamples(db);
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
    });
    this.#changes.emit({ type: 'removed', mac });
    return true;
  }

  async #summary(mac: string): Promise<MachineSummary> {
    let served: ServedAction | undefined;
    let servedError: string | undefined;
    try { served = await this.actions.servedActionFor(mac); } catch (e) { servedError = (e as Error).message; }
    return summarize({
      mac, state: this.recorder.state(mac), inventory: this.actions.record(mac), served, servedError,
      runId: this.recorder.runId(mac), recentLog: this.recorder.recentLog(mac), hardware: this.inventory.get(mac),
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
