// The audit log: every change an operator made (who: the token's name, "loopback" or
// "insecure-open"; what: method, path and query; the machine or image it touched; before and
// after), in booty.db table audit. Written by app.ts after a state-changing request by an
// operator succeeded (in the state store: booty.db or the replicas' PostgreSQL); read with GET /api/audit and on a machine's dashboard page. Agents'
// reports are not changes by an operator and are in the machine's runs and log instead.

import type { StateStore, StoreTx } from '../store/state-store.ts';

export interface AuditEntry {
  id: number;
  at: string;
  who: string;
  /** "PUT /api/machines/52-54-00-12-34-56/action" (the query too: ?overwrite=1&force=1 matters) */
  what: string;
  status: number;
  mac?: string;
  image?: string;
  before?: unknown;
  after?: unknown;
}


/** Entries kept: the oldest go first beyond this many (one busy year of a large fleet). */
const MAX_ENTRIES = 200_000;

export class AuditLog {
  readonly #store: StateStore;
  #sinceTrim = 0;

  constructor(store: StateStore) {
    this.#store = store;
  }

  /** `tx`: write it in that transaction of the store (it is kept only if the change it describes is) */
  async record(e: Omit<AuditEntry, 'id' | 'at'>, tx?: StoreTx): Promise<void> {
    const json = (v: unknown) => (v === undefined ? undefined : JSON.stringify(v));
    await (tx ?? this.#store).audit.add({ at: new Date().toISOString(), who: e.who, what: e.what.slice(0, 1000), status: e.status, mac: e.mac, image: e.image, before: json(e.before), after: json(e.after) });
    if (++this.#sinceTrim >= 1000) {
      this.#sinceTrim = 0;
      await (tx ?? this.#store).audit.trim(MAX_ENTRIES);
    }
  }

  /** Newest first; `mac`: that machine's only; `beforeId`: the page after an earlier answer. */
  async list(o: { mac?: string; limit?: number; beforeId?: number } = {}): Promise<AuditEntry[]> {
    const rows = await this.#store.audit.list({ ...o, limit: Math.min(o.limit ?? 100, 1000) });
    return rows.map((r) => ({
      id: r.id, at: r.at, who: r.who, what: r.what, status: r.status,
      ...(r.mac === undefined ? {} : { mac: r.mac }), ...(r.image === undefined ? {} : { image: r.image }),
      ...(r.before === undefined ? {} : { before: JSON.parse(r.before) as unknown }), ...(r.after === undefined ? {} : { after: JSON.parse(r.after) as unknown }),
    }));
  }
}
