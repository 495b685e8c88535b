// booty server's state behind one interface, with two backends: SQLite (the embedded default,
// DIR/booty.db, sqlite-store.ts) and PostgreSQL (`--database postgres://...`, postgres-store.ts),
// where any number of server replicas share one database. Every call is async (PostgreSQL is),
// both backends pass the same suite (test/integration/state-store.test.ts).
//
// Each concern has its own rows class and file (machine-rows.ts, run-rows.ts, run-sample-rows.ts, log-rows.ts,
// inventory-rows.ts, token-rows.ts, audit-rows.ts, image-rows.ts): a new table is a new file, a migration
// (migrations.ts), one line in StoreTx, rowsOver and StoreOverRows.
//
// Concurrency: a transaction sees and writes a consistent state; two replicas reporting for one
// machine serialize on its row (MachineRows.lock); a one-shot action is consumed by a conditional
// UPDATE (MachineRows.consumeOneShot), never by read-then-write. publish() tells the other
// replicas what changed (PostgreSQL NOTIFY, delivered only when the transaction commits).

import { AsyncLocalStorage } from 'node:async_hooks';
import type { MachineChange } from '../machines/changes.ts';
import { AuditRows } from './audit-rows.ts';
import { ImageRows } from './image-rows.ts';
import { InventoryRows } from './inventory-rows.ts';
import { LogRows } from './log-rows.ts';
import { MachineRows } from './machine-rows.ts';
import { MetaRows } from './meta-rows.ts';
import { RunRows } from './run-rows.ts';
import { RunSampleRows } from './run-sample-rows.ts';
import type { Sql } from './sql.ts';
import { TokenRows } from './token-rows.ts';
import { TrialRows } from './trial-rows.ts';

/** What a transaction (or the store itself, one statement at a time) offers. */
export interface StoreTx {
  readonly machines: MachineRows;
  readonly runs: RunRows;
  readonly runSamples: RunSampleRows;
  readonly trials: TrialRows;
  readonly logs: LogRows;
  readonly inventory: InventoryRows;
  readonly tokens: TokenRows;
  readonly audit: AuditRows;
  readonly meta: MetaRows;
  readonly images: ImageRows;
  /** tell the other replicas (after commit); this replica's own listeners are not called */
  publish(change: MachineChange): Promise<void>;
}

export interface StateStore extends StoreTx {
  readonly kind: 'sqlite' | 'postgres';
  /** where it is, for logs (never a password) */
  readonly where: string;
  /** run `fn` in one transaction: all of it commits or none; rejected: rolled back */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  /** changes published by other replicas (PostgreSQL); SQLite has no other replicas */
  onRemoteChange(fn: (c: MachineChange) => void): () => void;
  /** the schema version the database is at (migrations.ts) */
  schemaVersion(): Promise<number>;
  close(): Promise<void>;
}

/** The row classes over one executor (a connection or a transaction). */
export function rowsOver(sql: Sql, publish: (c: MachineChange) => Promise<void>): StoreTx {
  return {
    machines: new MachineRows(sql), runs: new RunRows(sql), runSamples: new RunSampleRows(sql), trials: new TrialRows(sql), logs: new LogRows(sql),
    inventory: new InventoryRows(sql), tokens: new TokenRows(sql), audit: new AuditRows(sql), meta: new MetaRows(sql), images: new ImageRows(sql), publish,
  };
}

/**
 * What both backends' stores share: the row classes of their own connection (outside any
 * transaction), offered as the store's properties. A backend gives `rows`; the rest is here.
 */
export abstract class StoreOverRows {
  protected abstract get rows(): StoreTx;
  get machines(): MachineRows { return this.rows.machines; }
  get runs(): RunRows { return this.rows.runs; }
  get runSamples(): RunSampleRows { return this.rows.runSamples; }
  get trials(): TrialRows { return this.rows.trials; }
  get logs(): LogRows { return this.rows.logs; }
  get inventory(): InventoryRows { return this.rows.inventory; }
  get tokens(): TokenRows { return this.rows.tokens; }
  get audit(): AuditRows { return this.rows.audit; }
  get meta(): MetaRows { return this.rows.meta; }
  get images(): ImageRows { return this.rows.images; }
  publish(c: MachineChange): Promise<void> { return this.rows.publish(c); }
}

const insideTransaction = new AsyncLocalStorage<object>();

/** Run a transaction's body, marked as inside `owner`'s transaction (see refuseInsideTransaction). */
export function runInsideTransaction<T>(owner: object, fn: () => Promise<T>): Promise<T> {
  return insideTransaction.run(owner, fn);
}

/**
 * A call on the store itself from inside one of its transactions would wait for that very
 * transaction (SQLite: the one connection's turn; PostgreSQL: a row it locked) and never end:
 * refused at once instead, naming the mistake.
 */
export function refuseInsideTransaction(owner: object): void {
  if (insideTransaction.getStore() === owner) throw new Error('state store: inside transaction(), use its tx; the store itself would wait for the transaction it is called from');
}
