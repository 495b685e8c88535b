// Each machine's last trial boot (trial-boot.ts), in the state store's `trials` table
// (store/trial-rows.ts): one row per machine, replaced when a new trial starts, kept over
// restarts (a deadline keeps running while the server is down and is judged at the next
// netboot). Nothing is cached here: replicas on one PostgreSQL read the same trial.
import type { StateStore, StoreTx } from '../store/state-store.ts';
import type { TrialRecord } from './trial-boot.ts';

export class TrialStore {
  readonly #store: StateStore;

  constructor(store: StateStore) { this.#store = store; }

  /** `db`: a transaction to read in (default: the store) */
  async get(mac: string, db: StoreTx = this.#store): Promise<TrialRecord | undefined> {
    const json = await db.trials.get(mac);
    if (json === undefined) return undefined;
    try { return JSON.parse(json) as TrialRecord; } catch { return undefined; /* a damaged row: that trial is forgotten */ }
  }

  async put(t: TrialRecord, db: StoreTx = this.#store): Promise<void> {
    await db.trials.put(t.mac, JSON.stringify(t));
  }

  async forget(tx: StoreTx, mac: string): Promise<void> {
    await tx.trials.remove(mac);
  }
}
