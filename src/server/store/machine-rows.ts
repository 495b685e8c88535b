// The `machines` table: each machine's inventory entry (its action, who manages it, the one-shot
// state: action-source.ts) and its last reported state (JSON, run-recorder.ts). The action is
// stored as its normalized JSON text; parsing it is the caller's (the store does not validate).

import type { Sql, SqlRow } from './sql.ts';
import { str } from './sql.ts';

export interface MachineRow {
  mac: string;
  name?: string;
  /** normalized action JSON; undefined: none of its own */
  action?: string;
  managedBy?: 'file' | 'api';
  actionError?: string;
  fileSig?: string;
  persistent: boolean;
  /** when a successful run consumed the (one-shot) action */
  oneShotDone?: string;
  created: string;
  updated: string;
}

const COLUMNS = 'mac, name, action, managed_by, action_error, file_sig, persistent, one_shot_done, created, updated';

function rowOf(r: SqlRow): MachineRow {
  return {
    mac: String(r.mac), name: str(r.name), action: str(r.action), managedBy: str(r.managed_by) as MachineRow['managedBy'],
    actionError: str(r.action_error), fileSig: str(r.file_sig), persistent: Number(r.persistent) === 1,
    oneShotDone: str(r.one_shot_done), created: String(r.created), updated: String(r.updated),
  };
}

export class MachineRows {
  readonly #sql: Sql;
  constructor(sql: Sql) { this.#sql = sql; }

  async get(mac: string): Promise<MachineRow | undefined> {
    const r = await this.#sql.get(`SELECT ${COLUMNS} FROM machines WHERE mac = ?`, [mac]);
    return r === undefined ? undefined : rowOf(r);
  }

  async list(): Promise<MachineRow[]> {
    return (await this.#sql.all(`SELECT ${COLUMNS} FROM machines ORDER BY mac`)).map(rowOf);
  }

  /**
   * Create or replace the inventory columns. The reported state stays, and so does the one-shot
   * state of an existing row: only consumeOneShot() and rearm() change it, so an operator's edit
   * made from an older read can never bring back an action another replica just consumed.
   */
  async save(m: MachineRow): Promise<void> {
    await this.#sql.run(`INSERT INTO machines (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (mac) DO UPDATE SET name = excluded.name, action = excluded.action, managed_by = excluded.managed_by,
        action_error = excluded.action_error, file_sig = excluded.file_sig, persistent = excluded.persistent,
        updated = excluded.updated`,
    [m.mac, m.name ?? null, m.action ?? null, m.managedBy ?? null, m.actionError ?? null, m.fileSig ?? null,
      m.persistent ? 1 : 0, m.oneShotDone ?? null, m.created, m.updated]);
  }

  async remove(mac: string): Promise<boolean> {
    return await this.#sql.run('DELETE FROM machines WHERE mac = ?', [mac]) > 0;
  }

  /**
   * Make sure the machine has a row and hold it until the transaction ends: two replicas
   * recording for one machine take turns here (PostgreSQL: the row lock; SQLite: one writer).
   */
  async lock(mac: string, now: string): Promise<void> {
    await this.#sql.run('INSERT INTO machines (mac, created, updated) VALUES (?, ?, ?) ON CONFLICT (mac) DO NOTHING', [mac, now, now]);
    if (this.#sql.dialect === 'postgres') await this.#sql.get('SELECT mac FROM machines WHERE mac = ? FOR UPDATE', [mac]);
  }

  /**
   * A successful result consumes the machine's one-shot action, once: the UPDATE's own condition
   * (not consumed yet, not persistent) decides, so of two replicas recording the same result at
   * the same moment exactly one gets true. `time`: the result's time (what the dashboard shows).
   */
  async consumeOneShot(mac: string, time: string, now: string): Promise<boolean> {
    const r = await this.#sql.get(`INSERT INTO machines (mac, one_shot_done, created, updated) VALUES (?, ?, ?, ?)
      ON CONFLICT (mac) DO UPDATE SET one_shot_done = excluded.one_shot_done, updated = excluded.updated
        WHERE machines.one_shot_done IS NULL AND machines.persistent = 0
      RETURNING mac`, [mac, time, now, now]);
    return r !== undefined;
  }

  /** Run the action again (rearm, or the action changed). */
  async rearm(mac: string, now: string): Promise<boolean> {
    return await this.#sql.run('UPDATE machines SET one_shot_done = NULL, updated = ? WHERE mac = ? AND one_shot_done IS NOT NULL', [now, mac]) > 0;
  }

  /** The machine's last reported state (JSON text, run-recorder.ts MachineState). */
  async saveState(mac: string, state: string, now: string): Promise<void> {
    await this.#sql.run('INSERT INTO machines (mac, created, updated, state) VALUES (?, ?, ?, ?) ON CONFLICT (mac) DO UPDATE SET state = excluded.state',
      [mac, now, now, state]);
  }

  async state(mac: string): Promise<string | undefined> {
    return str((await this.#sql.get('SELECT state FROM machines WHERE mac = ?', [mac]))?.state);
  }

  async states(): Promise<{ mac: string; state: string }[]> {
    return (await this.#sql.all('SELECT mac, state FROM machines WHERE state IS NOT NULL ORDER BY mac')).map((r) => ({ mac: String(r.mac), state: String(r.state) }));
  }
}
