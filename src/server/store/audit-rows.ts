// The `audit` table: every change an operator made (trust/audit-log.ts decides what is written).

import type { Sql, SqlRow } from './sql.ts';
import { str } from './sql.ts';

export interface AuditRow {
  id: number; at: string; who: string; what: string; status: number;
  mac?: string; image?: string; before?: string; after?: string;
}

function rowOf(r: SqlRow): AuditRow {
  return {
    id: Number(r.id), at: String(r.at), who: String(r.who), what: String(r.what), status: Number(r.status),
    mac: str(r.mac), image: str(r.image), before: str(r.before), after: str(r.after),
  };
}

export class AuditRows {
  readonly #sql: Sql;
  constructor(sql: Sql) { this.#sql = sql; }

  async add(e: Omit<AuditRow, 'id'>): Promise<number> {
    const r = await this.#sql.get('INSERT INTO audit (at, who, what, status, mac, image, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id',
      [e.at, e.who, e.what, e.status, e.mac ?? null, e.image ?? null, e.before ?? null, e.after ?? null]);
    return Number(r?.id);
  }

  /** Newest first; `mac`: that machine's only; `beforeId`: the page after an earlier answer. */
  async list(o: { mac?: string; limit?: number; beforeId?: number } = {}): Promise<AuditRow[]> {
    const where = ['id < ?'];
    const args: (string | number)[] = [o.beforeId ?? Number.MAX_SAFE_INTEGER];
    if (o.mac !== undefined) { where.push('mac = ?'); args.push(o.mac); }
    return (await this.#sql.all(`SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ?`, [...args, o.limit ?? 100])).map(rowOf);
  }

  /** Keep the newest `keep` entries. */
  async trim(keep: number): Promise<number> {
    return this.#sql.run('DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?', [keep]);
  }
}
