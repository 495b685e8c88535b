// Each machine's last trial boot (trial-boot.ts), in the `trials` table of booty.db (db.ts): one
// row per machine, replaced when a new trial starts, kept over restarts (a deadline keeps
// running while the server is down and is judged at the next netboot).
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { TrialRecord } from './trial-boot.ts';

export class TrialStore {
  readonly #byMac = new Map<string, TrialRecord>();
  readonly #put: StatementSync;
  readonly #delete: StatementSync;

  constructor(db: DatabaseSync) {
    this.#put = db.prepare('INSERT INTO trials (mac, record) VALUES (?, ?) ON CONFLICT (mac) DO UPDATE SET record = excluded.record');
    this.#delete = db.prepare('DELETE FROM trials WHERE mac = ?');
    for (const r of db.prepare('SELECT mac, record FROM trials').all() as { mac: string; record: string }[]) {
      try { this.#byMac.set(r.mac, JSON.parse(r.record) as TrialRecord); } catch { /* a damaged row: that trial is forgotten */ }
    }
  }

  get(mac: string): TrialRecord | undefined { return this.#byMac.get(mac); }

  put(t: TrialRecord): void {
    this.#put.run(t.mac, JSON.stringify(t));
    this.#byMac.set(t.mac, t);
  }

  forget(mac: string): void {
    this.#delete.run(mac);
    this.#byMac.delete(mac);
  }
}
