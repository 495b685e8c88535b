// The `inventory` table: each machine's last hardware inventory (src/config/inventory.ts), as
// JSON text, replaced at every boot (inventory-store.ts).

import type { Sql } from './sql.ts';

export interface InventoryRow { mac: string; received: string; facts: string }

export class InventoryRows {
  readonly #sql: Sql;
  constructor(sql: Sql) { this.#sql = sql; }

  async put(mac: string, received: string, facts: string): Promise<void> {
    await this.#sql.run('INSERT INTO inventory (mac, received, facts) VALUES (?, ?, ?) ON CONFLICT (mac) DO UPDATE SET received = excluded.received, facts = excluded.facts',
      [mac, received, facts]);
  }

  async get(mac: string): Promise<InventoryRow | undefined> {
    const r = await this.#sql.get('SELECT mac, received, facts FROM inventory WHERE mac = ?', [mac]);
    return r === undefined ? undefined : { mac: String(r.mac), received: String(r.received), facts: String(r.facts) };
  }

  async list(): Promise<InventoryRow[]> {
    return (await this.#sql.all('SELECT mac, received, facts FROM inventory ORDER BY mac')).map((r) => ({ mac: String(r.mac), received: String(r.received), facts: String(r.facts) }));
  }

  async remove(mac: string): Promise<boolean> {
    return await this.#sql.run('DELETE FROM inventory WHERE mac = ?', [mac]) > 0;
  }
}
