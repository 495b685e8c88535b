// The machines, as routes and the live stream see them: the action source (what each machine
// should do: action-source.ts) and the run recorder (what its agent reported: run-recorder.ts)
// over one state store (src/server/store/), joined into summaries (machine-summary.ts). A
// machine is known when either half knows it. Reporting is where the halves meet: a run is
// labelled with the action served, and a successful result consumes a one-shot action, in the
// recorder's transaction. Changes are announced on one feed (changes.ts), which replicas on
// PostgreSQL share (change-relay.ts).

import type { Action } from '../../config/action.ts';
import type { AgentEvent } from '../../config/report.ts';
import type { StateStore, StoreTx } from '../store/state-store.ts';
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
import { TrialStore } from './trial-store.ts';
import { confirm, decide, describeTrial, expire, startTrial, type ConfirmOutcome, type TrialRecord } from './trial-boot.ts';

export class MachineStore {
  readonly actions: ActionSource;
  readonly recorder: RunRecorder;
  readonly inventory: InventoryStore;
  /** each run's progress samples (the dashboard's throughput chart) */
  readonly samples: RunSamples;
  readonly trials: TrialStore;
  readonly #store: StateStore;
  readonly #changes = new MachineChanges();
  readonly #unrelay: () => void;
  readonly #now: () => number;

  /** `now`: the clock of log retention and trial deadlines (tests); `defaultAction`: --default-action;
   *  `onRelayError`: a change could not be told to the other replicas */
  constructor(dataDir: string, store: StateStore, opts: { now?: () => number; defaultAction?: Action; onRelayError?: (e: Error) => void } = {}) {
    this.#store = store;
    this.#now = opts.now ?? Date.now;
    this.actions = new ActionSource(dataDir, store, this.#changes, opts.defaultAction);
    this.recorder = new RunRecorder(dataDir, store, this.#changes, opts);
    this.inventory = new InventoryStore(store);
    this.samples = new RunSamples(store);
    this.trials = new TrialStore(store);
    this.#unrelay = relayChanges(this.#changes, store, opts.onRelayError ?? (() => {}));
  }

  // ---- trial boots (trial-boot.ts: the state machine; here where it meets the store) ----------

  /** The machine's trial, if it still belongs to its configured action and one-shot state (an
   *  operator's change ends it), with an overdue pending one expired: saved and logged once, in a
   *  transaction holding the machine's row lock (of two replicas expiring it, one does). */
  async #trial(mac: string, configured: Action, record?: InventoryRecord): Promise<TrialRecord | undefined> {
    const key = JSON.stringify(configured);
    const belongs = (t: TrialRecord | undefined, oneShot: string | undefined) => t !== undefined && t.actionKey === key && (t.oneShot ?? null) === (oneShot ?? null);
    const t = await this.trials.get(mac);
    if (!belongs(t, (record ?? await this.actions.record(mac))?.oneShotDone)) return undefined;
    if (expire(t!, this.#now()) === t) return t;
    const noted: string[] = [];
    const after = await this.#store.transaction(async (tx) => {
      await tx.machines.lock(mac, new Date(this.#now()).toISOString());
      const fresh = await this.trials.get(mac, tx);
      if (!belongs(fresh, (await this.actions.record(mac, tx))?.oneShotDone)) return undefined;
      const expired = expire(fresh!, this.#now());
      if (expired !== fresh) {
        await this.trials.put(expired, tx);
        const line = `${new Date(this.#now()).toISOString()} error ${expired.failure ?? ''}`;
        await this.recorder.note(tx, mac, line);
        noted.push(line);
      }
      return expired;
    });
    if (noted.length > 0) this.recorder.noted(mac, noted);
    return after;
  }

  /** What the machine's netboot gets now (iPXE script, the agent's action): the configured action
   *  with the one-shot rule, unless a trial boot decides (pending: `none`; failed: onTrialFailure). */
  async served(mac: string): Promise<(ServedAction & { trial?: string }) | undefined> {
    const s = await this.#withTrial(mac, await this.actions.servedActionFor(mac));
    if (s === undefined) return undefined;
    const { trialRecord: _t, ...served } = s;
    return served;
  }

  async #withTrial(mac: string, served: ServedAction | undefined, record?: InventoryRecord): Promise<(ServedAction & { trial?: string; trialRecord?: TrialRecord }) | undefined> {
    if (served === undefined) return undefined;
    const t = await this.#trial(mac, served.configured, record);
    if (t === undefined) return served;
    const d = decide(t, served.configured, this.#now());
    const trial = describeTrial(t, this.#now());
    if (d.kind === 'wait') {
      const a = served.configured;
      return { ...served, action: { action: 'none', after: a.after, onError: a.onError, wipeOnError: false, dryRun: false }, trial, trialRecord: t };
    }
    if (d.kind === 'failure') return { ...served, action: d.action, trial, trialRecord: t };
    return { ...served, trialRecord: t };
  }

  /** The deployed OS confirms its trial boot (POST /api/machines/<mac>/trial). */
  async confirmTrial(mac: string, by: string | undefined): Promise<ConfirmOutcome> {
    let configured: Action | undefined;
    try { configured = (await this.actions.actionFor(mac))?.action; } catch { configured = undefined; }
    const t = configured === undefined ? undefined : await this.#trial(mac, configured);
    const r = confirm(t, this.#now(), by);
    const line = r.ok ? (r.trial !== t ? `${r.trial.confirmedAt} info ${describeTrial(r.trial, this.#now())}` : undefined)
      : `${new Date(this.#now()).toISOString()} warn trial boot confirmation refused: ${r.message}`;
    if (line !== undefined) {
      await this.#store.transaction(async (tx) => {
        if (r.ok) await this.trials.put(r.trial, tx);
        await this.recorder.note(tx, mac, line);
      });
      this.recorder.noted(mac, [line]);
    }
    return r;
  }

  /** A result arrived (inside the recorder's transaction `tx`, after the one-shot rule): a
   *  successful trial deploy starts a trial; the forensic capture of a failed one marks it handled. */
  async #trialResult(tx: StoreTx, mac: string, e: Extract<AgentEvent, { type: 'result' }>, configured: Action | undefined): Promise<void> {
    if (!e.ok || configured?.action !== 'deploy' || configured.bootOrder !== 'trial' || configured.dryRun) return;
    const previous = await this.trials.get(mac, tx);
    if (e.action === 'deploy') {
      const t = startTrial({ mac, nowMs: this.#now(), action: configured, actionKey: JSON.stringify(configured), oneShot: (await this.actions.record(mac, tx))?.oneShotDone, previous });
      await this.trials.put(t, tx);
    } else if (e.action === 'capture' && previous?.state === 'failed' && previous.onFailure === 'capture' && previous.actionKey === JSON.stringify(configured)) {
      await this.trials.put({ ...previous, state: 'handled' }, tx);
    }
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
        await this.#trialResult(tx, mac, e, configured);
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
      await this.trials.forget(tx, mac);
    });
    this.#changes.emit({ type: 'removed', mac });
    return true;
  }

  async #summary(mac: string, known: { record?: InventoryRecord; state?: MachineState; hardware?: StoredInventory }): Promise<MachineSummary> {
    let served: ServedAction | undefined;
    let servedError: string | undefined;
    let trial: TrialRecord | undefined;
    try {
      const s = await this.#withTrial(mac, await this.actions.servedFrom(mac, known.record), known.record);
      if (s !== undefined) { const { trialRecord, ...rest } = s; served = rest; trial = trialRecord; }
    } catch (e) { servedError = (e as Error).message; }
    return summarize({
      mac, state: known.state, inventory: known.record, served, servedError,
      runId: await this.recorder.runId(mac), recentLog: await this.recorder.recentLog(mac), hardware: known.hardware,
      ...(trial === undefined ? {} : { trial: { ...trial, message: describeTrial(trial, this.#now()) } }),
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
