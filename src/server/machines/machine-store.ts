// The machines, as routes and the live stream see them: the action source (what each machine
// should do: action-source.ts) and the run recorder (what its agent reported: run-recorder.ts)
// over one state store (src/server/store/), joined into summaries (machine-summary.ts). A
// machine is known when either half knows it. Reporting is where the halves meet: a run is
// labelled with the action served, and a successful result consumes a one-shot action, in the
// recorder's transaction. Changes are announced on one feed (changes.ts), which replicas on
// PostgreSQL share (change-relay.ts).

import type { Action } from '../../config/action.ts';
import type { AgentEvent } from '../../config/report.ts';
import type { StateStore } from '../store/state-store.ts';
import { ActionSource } from './action-source.ts';
import type { InventoryRecord, ServedAction } from './action-source.ts';
import { relayChanges } from './change-relay.ts';
import { MachineChanges } from './changes.ts';
import type { MachineChange } from './changes.ts';
import { summarize } from './machine-summary.ts';
import type { MachineDetail, MachineSummary } from './machine-summary.ts';
import { RunRecorder } from './run-recorder.ts';
import { InventoryStore } from './inventory-store.ts';
import type { StoredInventory } from './inventory-store.ts';
import type { MachineInventory } from '../../config/inventory.ts';
import type { MachineState } from './run-recorder.ts';
import { RunSamples } from './run-samples.ts';

export class MachineStore {
  readonly actions: ActionSource;
  readonly recorder: RunRecorder;
  readonly inventory: InventoryStore;
  /** each run's progress samples (the dashboard's throughput chart) */
  readonly samples: RunSamples;
  readonly #store: StateStore;
  readonly #changes = new MachineChanges();
  readonly #unrelay: () => void;

  /** `now`: the recorder's clock for log retention (tests); `defaultAction`: --default-action;
   *  `onRelayError`: a change could not be told to the other replicas */
  constructor(dataDir: string, store: StateStore, opts: { now?: () => number; defaultAction?: Action; onRelayError?: (e: Error) => void } = {}) {
    this.#store = store;
    this.actions = new ActionSource(dataDir, store, this.#changes, opts.defaultAction);
    this.recorder = new RunRecorder(dataDir, store, this.#changes, opts);
    this.inventory = new InventoryStore(store);
    this.samples = new RunSamples(store);
    this.#unrelay = relayChanges(this.#changes, store, opts.onRelayError ?? (() => {}));
  }

  /** An agent's inventory (validated by the route): stored, and the machine's summary changes. */
  async putInventory(mac: string, inv: MachineInventory): Promise<void> {
    await this.inventory.put(mac, inv);
    this.#changes.emit({ type: 'machine', mac });
  }

  async init(): Promise<void> {
    await this.actions.init();
    await this.recorder.init();
    await this.actions.reload();
  }

  /** Stop relaying changes to and from other replicas (before the store closes). */
  close(): void { this.#unrelay(); }

  onChange(fn: (c: MachineChange) => void): () => void { return this.#changes.on(fn); }

  async #known(mac: string): Promise<boolean> {
    return await this.actions.record(mac) !== undefined || await this.inventory.get(mac) !== undefined;
  }

  /** Apply a batch of events from one agent: its runs and log, and the one-shot rule. */
  async record(mac: string, events: AgentEvent[]): Promise<MachineState> {
    let configured: Action | undefined;
    try { configured = (await this.actions.actionFor(mac))?.action; } catch { configured = undefined; }
    return this.recorder.record(mac, events, {
      runLabel: (tx) => this.actions.runLabel(tx, mac, configured),
      onResult: async (tx, e, now, runId) => {
        await this.actions.resultReported(tx, mac, e, configured, now);
        await this.samples.result(tx, runId, e);
      },
      onProgress: (tx, runId, e) => this.samples.progress(tx, runId, e),
    });
  }

  /** Forget a machine: its action (and file), and with `history` its runs and log too. */
  async remove(mac: string, opts: { history?: boolean } = {}): Promise<boolean> {
    await this.actions.syncFile(mac);
    if (!await this.#known(mac)) return false;
    await this.actions.removeFile(mac);
    await this.#store.transaction(async (tx) => {
      if (opts.history === true) await this.samples.forget(tx, mac);
      await this.actions.forget(tx, mac);
      await this.recorder.forget(tx, mac, opts);
      await this.inventory.forget(tx, mac);
    });
    this.#changes.emit({ type: 'removed', mac });
    return true;
  }

  async #summary(mac: string, known: { record?: InventoryRecord; state?: MachineState; hardware?: StoredInventory }): Promise<MachineSummary> {
    let served: ServedAction | undefined;
    let servedError: string | undefined;
    try { served = await this.actions.servedFrom(mac, known.record); } catch (e) { servedError = (e as Error).message; }
    return summarize({
      mac, state: known.state, inventory: known.record, served, servedError,
      runId: await this.recorder.runId(mac), recentLog: await this.recorder.recentLog(mac), hardware: known.hardware,
    });
  }

  /** Every machine that has an action (file or API) or has reported, with its last state. */
  async list(): Promise<MachineSummary[]> {
    await this.actions.reload();
    const [records, states, hardware] = await Promise.all([this.actions.records(), this.recorder.states(), this.inventory.all()]);
    const byMac = new Map(records.map((r) => [r.mac, r]));
    const macs = [...new Set([...byMac.keys(), ...hardware.keys()])].sort();
    const out = [];
    for (const mac of macs) out.push(await this.#summary(mac, { record: byMac.get(mac), state: states.get(mac), hardware: hardware.get(mac) }));
    return out;
  }

  async summary(mac: string): Promise<MachineSummary | undefined> {
    await this.actions.syncFile(mac);
    const [record, state, hardware] = await Promise.all([this.actions.record(mac), this.recorder.state(mac), this.inventory.get(mac)]);
    if (record === undefined && hardware === undefined) return undefined;
    return this.#summary(mac, { record, state, hardware });
  }

  async get(mac: string, lines = 100): Promise<MachineDetail | undefined> {
    const sum = await this.summary(mac);
    if (sum === undefined) return undefined;
    return { ...sum, configuredAction: (await this.actions.record(mac))?.action, log: await this.recorder.log(mac, { limit: lines }), inventory: (await this.inventory.get(mac))?.inventory };
  }

  /** Machines in each phase right now (those that never reported: "unknown"). */
  async phaseCounts(): Promise<Map<string, number>> {
    const [records, states, hardware] = await Promise.all([this.actions.records(), this.recorder.states(), this.inventory.all()]);
    const m = new Map<string, number>();
    for (const mac of new Set([...records.map((r) => r.mac), ...hardware.keys()])) {
      const p = states.get(mac)?.phase ?? 'unknown';
      m.set(p, (m.get(p) ?? 0) + 1);
    }
    return m;
  }
}
