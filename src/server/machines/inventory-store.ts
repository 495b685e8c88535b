// Each machine's last hardware inventory (src/config/inventory.ts), as its agent sent it at its
// last boot, in the `inventory` table of the state store (src/server/store/inventory-rows.ts).
// One row per machine, replaced at every boot; the JSON is stored as received (validated by the
// route before). Nothing cached: every replica reads the same row.
import type { MachineInventory } from '../../config/inventory.ts';
import type { InventoryRow } from '../store/inventory-rows.ts';
import type { StateStore, StoreTx } from '../store/state-store.ts';

export interface StoredInventory { received: string; inventory: MachineInventory }

function storedOf(r: InventoryRow | undefined): StoredInventory | undefined {
  if (r === undefined) return undefined;
  try { return { received: r.received, inventory: JSON.parse(r.facts) as MachineInventory }; } catch { return undefined; /* a damaged row: the next boot replaces it */ }
}

export class InventoryStore {
  readonly #store: StateStore;

  constructor(store: StateStore) { this.#store = store; }

  async put(mac: string, inventory: MachineInventory, received = new Date().toISOString()): Promise<void> {
    await this.#store.inventory.put(mac, received, JSON.stringify(inventory));
  }

  async get(mac: string): Promise<StoredInventory | undefined> { return storedOf(await this.#store.inventory.get(mac)); }

  /** Every machine's, by MAC. */
  async all(): Promise<Map<string, StoredInventory>> {
    const m = new Map<string, StoredInventory>();
    for (const r of await this.#store.inventory.list()) {
      const s = storedOf(r);
      if (s !== undefined) m.set(r.mac, s);
    }
    return m;
  }

  async forget(tx: StoreTx, mac: string): Promise<void> {
    await tx.inventory.remove(mac);
  }
}
