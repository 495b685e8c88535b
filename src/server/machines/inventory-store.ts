// Each machine's last hardware inventory (src/config/inventory.ts), as its agent sent it at its
// last boot, in the `inventory` table of booty.db (db.ts). One row per machine, replaced at every
// boot; the JSON is stored as received (validated by the route before).
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { MachineInventory } from '../../config/inventory.ts';

export interface StoredInventory { received: string; inventory: MachineInventory }

export class InventoryStore {
  readonly #byMac = new Map<string, StoredInventory>();
  readonly #put: StatementSync;
  readonly #delete: StatementSync;

  constructor(db: DatabaseSync) {
    this.#put = db.prepare('INSERT INTO inventory (mac, received, facts) VALUES (?, ?, ?) ON CONFLICT (mac) DO UPDATE SET received = excluded.received, facts = excluded.facts');
    this.#delete = db.prepare('DELETE FROM inventory WHERE mac = ?');
    for (const r of db.prepare('SELECT mac, received, facts FROM inventory').all() as { mac: string; received: string; facts: string }[]) {
      try { this.#byMac.set(r.mac, { received: r.received, inventory: JSON.parse(r.facts) as MachineInventory }); } catch { /* a damaged row: the next boot replaces it */ }
    }
  }

  put(mac: string, inventory: MachineInventory, received = new Date().toISOString()): void {
    this.#put.run(mac, received, JSON.stringify(inventory));
    this.#byMac.set(mac, { received, inventory });
  }

  get(mac: string): StoredInventory | undefined { return this.#byMac.get(mac); }
  has(mac: string): boolean { return this.#byMac.has(mac); }
  macs(): Iterable<string> { return this.#byMac.keys(); }

  forget(mac: string): void {
    this.#delete.run(mac);
    this.#byMac.delete(mac);
  }
}
