// The state store on SQLite (the embedded default): DIR/booty.db through node:sqlite, the same
// file and schema db.ts opens. One process, one connection: node:sqlite is synchronous, so a
// transaction that awaits between statements holds a lock (a promise chain) that every other
// call waits for, and statements of two transactions never interleave. One replica only: two
// servers on one file would wait for each other's write lock (busy_timeout), not share it.

import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { MachineChange } from '../machines/changes.ts';
import { openDatabase } from '../db.ts';
import { LATEST_SCHEMA, MIGRATIONS, newerSchemaError } from './migrations.ts';
import type { Sql, SqlRow, SqlValue } from './sql.ts';
import { StoreOverRows, refuseInsideTransaction, rowsOver, runInsideTransaction } from './state-store.ts';
import type { StateStore, StoreTx } from './state-store.ts';

class SqliteSql implements Sql {
  readonly dialect = 'sqlite' as const;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  /** wraps each call (the store's own, outside a transaction: wait for the lock) */
  readonly #around: <T>(fn: () => T) => Promise<T>;

  constructor(db: DatabaseSync, statements: Map<string, StatementSync>, around: <T>(fn: () => T) => Promise<T>) {
    this.#db = db;
    this.#statements = statements;
    this.#around = around;
  }

  #prepared(text: string): StatementSync {
    let st = this.#statements.get(text);
    if (st === undefined) { st = this.#db.prepare(text); this.#statements.set(text, st); }
    return st;
  }

  all(text: string, params: SqlValue[] = []): Promise<SqlRow[]> { return this.#around(() => this.#prepared(text).all(...params) as SqlRow[]); }
  get(text: string, params: SqlValue[] = []): Promise<SqlRow | undefined> { return this.#around(() => this.#prepared(text).get(...params) as SqlRow | undefined); }
  run(text: string, params: SqlValue[] = []): Promise<number> { return this.#around(() => Number(this.#prepared(text).run(...params).changes)); }
}

export class SqliteStore extends StoreOverRows implements StateStore {
  readonly kind = 'sqlite' as const;
  readonly where: string;
  readonly #db: DatabaseSync;
  #tail: Promise<void> = Promise.resolve();
  readonly #rows: StoreTx;
  readonly #inTx: Sql;

  private constructor(file: string, db: DatabaseSync) {
    super();
    this.where = file;
    this.#db = db;
    const statements = new Map<string, StatementSync>();
    this.#rows = rowsOver(new SqliteSql(db, statements, (fn) => { refuseInsideTransaction(this); return this.#exclusive(async () => fn()); }), async () => {});
    this.#inTx = new SqliteSql(db, statements, async (fn) => fn());
  }

  /** Open (or create) `file` and bring its schema to the newest version. */
  static open(file: string): SqliteStore {
    const db = openDatabase(file, { newestKnown: LATEST_SCHEMA });
    try {
      migrate(db, file);
    } catch (e) {
      db.close();
      throw e;
    }
    return new SqliteStore(file, db);
  }

  protected get rows(): StoreTx { return this.#rows; }
  onRemoteChange(_fn: (c: MachineChange) => void): () => void { return () => {}; }

  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const before = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((ok) => { release = ok; });
    await before;
    try { return await fn(); } finally { release(); }
  }

  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    refuseInsideTransaction(this);
    return this.#exclusive(async () => {
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        const r = await runInsideTransaction(this, () => fn(rowsOver(this.#inTx, async () => {})));
        this.#db.exec('COMMIT');
        return r;
      } catch (e) {
        this.#db.exec('ROLLBACK');
        throw e;
      }
    });
  }

  async schemaVersion(): Promise<number> {
    return this.#exclusive(async () => Number((this.#db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as { value: string }).value));
  }

  async close(): Promise<void> {
    await this.#exclusive(async () => { if (this.#db.isOpen) this.#db.close(); });
  }
}

/** Version 1's statements are idempotent (existing files already have it); later ones run once. */
function migrate(db: DatabaseSync, file: string): void {
  db.exec('BEGIN IMMEDIATE');
  try {
    const at = Number((db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as { value: string }).value);
    if (at > LATEST_SCHEMA) throw newerSchemaError(file, at);
    for (const m of MIGRATIONS) {
      if (m.version !== 1 && m.version <= at) continue;
      for (const s of m.sqlite) db.exec(s);
    }
    db.prepare("UPDATE meta SET value = ? WHERE key = 'schema'").run(String(Math.max(at, LATEST_SCHEMA)));
    db.exec('COMMIT');
  } catch (e) {
    db.exec('ROLLBACK');
    throw e;
  }
}
