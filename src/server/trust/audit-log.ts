// The audit log: every change an operator made (who: the token's name, "loopback" or
// "insecure-open"; what: method, path and query; the machine or image it touched; before and
// after), in booty.db table audit. Written by app.ts after a state-changing request by an
// operator succeeded; read with GET /api/audit and on a machine's dashboard page. Agents'
// reports are not changes by an operator and are in the machine's runs and log instead.

import type { DatabaseSync } from 'node:sqlite';

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

type Row = { id: number; at: string; who: string; what: string; status: number; mac: string | null; image: string | null; before: string | null; after: string | null };

/** Entries kept: the oldest go first beyond this many (one busy year of a large fleet). */
const MAX_ENTRIES = 200_000;

export class AuditLog {
  readonly #db: DatabaseSync;
  #sinceTrim = 0;

  constructor(db: DatabaseSync) {
    this.#db = db;
    db.exec(`CREATE TABLE IF NOT EXISTS audit (
      id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, who TEXT NOT NULL, what TEXT NOT NULL, status INTEGER NOT NULL,
      mac TEXT, image TEXT, before TEXT, after TEXT);
      CREATE INDEX IF NOT EXISTS audit_by_mac ON audit (mac, id);`);
  }

  record(e: Omit<AuditEntry, 'id' | 'at'>): void {
    const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v));
    this.#db.prepare('INSERT INTO audit (at, who, what, status, mac, image, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(new Date().toISOString(), e.who, e.what.slice(0, 1000), e.status, e.mac ?? null, e.image ?? null, json(e.before), json(e.after));
    if (++this.#sinceTrim >= 1000) {
      this.#sinceTrim = 0;
      this.#db.prepare('DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?').run(MAX_ENTRIES);
    }
  }

  /** Newest first; `mac`: that machine's only; `beforeId`: the page after an earlier answer. */
  list(o: { mac?: string; limit?: number; beforeId?: number } = {}): AuditEntry[] {
    const where = ['id < ?'];
    const args: (string | number)[] = [o.beforeId ?? Number.MAX_SAFE_INTEGER];
    if (o.mac !== undefined) { where.push('mac = ?'); args.push(o.mac); }
    const rows = this.#db.prepare(`SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ?`).all(...args, Math.min(o.limit ?? 100, 1000)) as unknown as Row[];
    return rows.map((r) => ({
      id: r.id, at: r.at, who: r.who, what: r.what, status: r.status,
      ...(r.mac === null ? {} : { mac: r.mac }), ...(r.image === null ? {} : { image: r.image }),
      ...(r.before === null ? {} : { before: JSON.parse(r.before) as unknown }), ...(r.after === null ? {} : { after: JSON.parse(r.after) as unknown }),
    }));
  }
}
