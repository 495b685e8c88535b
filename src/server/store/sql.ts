// What the store's row classes (one file per concern: machine-rows.ts, run-rows.ts, ...) run
// their SQL on: either backend's connection, or the transaction they are in. The row classes
// write one SQL text for both backends: `?` placeholders (PostgreSQL's executor numbers them),
// ON CONFLICT and RETURNING (both have them); where the dialects differ they ask `dialect`.
//
// Values: strings, numbers, null. PostgreSQL returns bigint and numeric columns as strings
// (postgres.js keeps 64-bit integers exact), so readers convert with Number() where they need one.

export type SqlValue = string | number | null;
export type SqlRow = Record<string, SqlValue>;

export interface Sql {
  readonly dialect: 'sqlite' | 'postgres';
  all(text: string, params?: SqlValue[]): Promise<SqlRow[]>;
  /** first row or undefined */
  get(text: string, params?: SqlValue[]): Promise<SqlRow | undefined>;
  /** rows changed (INSERT/UPDATE/DELETE) */
  run(text: string, params?: SqlValue[]): Promise<number>;
}

export const str = (v: SqlValue | undefined): string | undefined => v === null || v === undefined ? undefined : String(v);
export const num = (v: SqlValue | undefined): number | undefined => v === null || v === undefined ? undefined : Number(v);
