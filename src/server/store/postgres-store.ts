// The state store on PostgreSQL (`booty server --database postgres://...`): any number of server
// replicas share one database. Client: postgres.js (`postgres` on npm; pure JavaScript, no
// dependencies, LISTEN that re-subscribes after a lost connection).
//
// - Transactions are PostgreSQL's (READ COMMITTED); what must not race takes a row lock or is a
//   conditional statement (MachineRows.lock, consumeOneShot), never read-then-write.
// - publish() is pg_notify on channel booty_changes inside the caller's transaction, so other
//   replicas hear of a change only once it is committed, and never of a rolled-back one. The
//   payload carries this store's origin id; a replica ignores its own (it told its listeners).
//   PostgreSQL caps a payload near 8000 bytes: a log change's oldest lines are left out of the
//   notification when they do not fit (the log itself is in the database).
// - Schema: migrations.ts, applied at open under pg_advisory_xact_lock.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import postgres from 'postgres';
import type { MachineChange } from '../machines/changes.ts';
import { LATEST_SCHEMA, MIGRATIONS, SCHEMA_LOCK, newerSchemaError } from './migrations.ts';
import type { PostgresTarget } from './postgres-url.ts';
import type { Sql, SqlRow, SqlValue } from './sql.ts';
import { StoreOverRows, refuseInsideTransaction, rowsOver, runInsideTransaction } from './state-store.ts';
import type { StateStore, StoreTx } from './state-store.ts';

export const CHANGE_CHANNEL = 'booty_changes';
const MAX_PAYLOAD = 7900;

type Client = postgres.Sql | postgres.TransactionSql;

/** `?` placeholders as $1, $2, ... (the row classes never put a `?` inside a literal) */
const numbered = new Map<string, string>();
function toDollars(text: string): string {
  let out = numbered.get(text);
  if (out === undefined) {
    let i = 0;
    out = text.replace(/\?/g, () => `$${++i}`);
    numbered.set(text, out);
  }
  return out;
}

class PostgresSql implements Sql {
  readonly dialect = 'postgres' as const;
  readonly #client: Client;
  /** the store, when this runs outside any transaction (then refused inside one) */
  readonly #owner: object | undefined;
  constructor(client: Client, owner?: object) { this.#client = client; this.#owner = owner; }

  async all(text: string, params: SqlValue[] = []): Promise<SqlRow[]> {
    if (this.#owner !== undefined) refuseInsideTransaction(this.#owner);
    return [...await this.#client.unsafe(toDollars(text), params as postgres.ParameterOrJSON<never>[])] as SqlRow[];
  }

  async get(text: string, params: SqlValue[] = []): Promise<SqlRow | undefined> {
    return (await this.all(text, params))[0];
  }

  async run(text: string, params: SqlValue[] = []): Promise<number> {
    if (this.#owner !== undefined) refuseInsideTransaction(this.#owner);
    return (await this.#client.unsafe(toDollars(text), params as postgres.ParameterOrJSON<never>[])).count;
  }
}

/** A change as a notification payload, cut to fit. */
export function notificationPayload(origin: string, c: MachineChange): string {
  let text = JSON.stringify({ origin, change: c });
  if (Buffer.byteLength(text) <= MAX_PAYLOAD) return text;
  if (c.type === 'images') return text;
  if (c.type !== 'log') return JSON.stringify({ origin, change: { type: c.type, mac: c.mac } });
  const lines = [...c.lines];
  while (lines.length > 0 && Buffer.byteLength(text) > MAX_PAYLOAD) {
    lines.shift();
    text = JSON.stringify({ origin, change: { ...c, lines: lines.map((l) => l.slice(0, 2000)) } });
  }
  return text;
}

/** Node's codes for a certificate it does not trust (tls.connect's verification). */
const TLS_REFUSALS = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE', 'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED', 'CERT_UNTRUSTED',
]);

/** What the client's TLS does for the URL's sslmode (postgres-url.ts); the CA file is read here, before connecting. */
function tlsOptions(target: PostgresTarget): ConnectionOptions | false {
  if (target.tls === undefined) return false;
  // require: encrypted, the certificate not checked (libpq's require without a root certificate)
  if (target.tls.mode === 'require') return { rejectUnauthorized: false };
  let ca: Buffer | undefined;
  if (target.tls.rootCert !== 'system') {
    try { ca = readFileSync(target.tls.rootCert!); } catch (e) {
      throw new Error(`database ${target.where}: cannot read sslrootcert ${target.tls.rootCert}: ${(e as Error).message}`);
    }
  }
  return {
    rejectUnauthorized: true, ...(ca === undefined ? {} : { ca }),
    // verify-ca: signed by the CA, whatever host name it carries
    ...(target.tls.mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
  };
}

export class PostgresStore extends StoreOverRows implements StateStore {
  readonly kind = 'postgres' as const;
  readonly where: string;
  readonly #sql: postgres.Sql;
  readonly #origin = randomBytes(8).toString('hex');
  readonly #rows: StoreTx;
  readonly #listeners = new Set<(c: MachineChange) => void>();
  #unlisten: (() => Promise<void>) | undefined;

  private constructor(target: PostgresTarget, sql: postgres.Sql) {
    super();
    this.where = target.where;
    this.#sql = sql;
    this.#rows = rowsOver(new PostgresSql(sql, this), (c) => this.#publishOn(sql, c));
  }

  /** Connect, migrate (under the advisory lock) and start listening for other replicas' changes. */
  static async open(target: PostgresTarget, opts: { max?: number } = {}): Promise<PostgresStore> {
    const ssl = tlsOptions(target);
    const sql = postgres({
      host: target.host, port: target.port, path: target.path, database: target.database,
      username: target.user, password: target.password, max: opts.max ?? 10, ssl,
      connect_timeout: 10, onnotice: () => {}, connection: { application_name: 'booty-server' },
    });
    const store = new PostgresStore(target, sql);
    try {
      await store.#migrate();
      const l = await sql.listen(CHANGE_CHANNEL, (payload) => store.#heard(payload));
      store.#unlisten = l.unlisten;
    } catch (e) {
      await sql.end({ timeout: 1 }).catch(() => {});
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (target.tls !== undefined && (TLS_REFUSALS.has(code) || code.startsWith('ERR_TLS_'))) {
        // (Node's own hint after the ';' names a Node.js flag, not something a booty operator sets)
        throw new Error(`database ${target.where}: the server's TLS certificate is not trusted (sslmode=${target.tls.mode}${target.tls.rootCert === undefined ? '' : `, sslrootcert=${target.tls.rootCert}`}): ${(e as Error).message.split(';')[0]}; nothing was sent to it. Give the CA that signed the server's certificate as sslrootcert`);
      }
      if (code === 'SSL_NOT_SUPPORTED') throw new Error(`database ${target.where}: the server does not offer TLS (ssl = off in its postgresql.conf) and sslmode=${target.tls?.mode} requires it`);
      throw new Error(`database ${target.where}: ${(e as Error).message}`);
    }
    return store;
  }

  protected get rows(): StoreTx { return this.#rows; }

  async #publishOn(client: Client, c: MachineChange): Promise<void> {
    await client.unsafe('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, notificationPayload(this.#origin, c)]);
  }

  #heard(payload: string): void {
    let msg: { origin?: string; change?: MachineChange };
    try { msg = JSON.parse(payload) as typeof msg; } catch { return; }
    if (msg.origin === this.#origin || msg.change === undefined) return;
    for (const fn of this.#listeners) {
      try { fn(msg.change); } catch { /* a listener's trouble is not the store's */ }
    }
  }

  onRemoteChange(fn: (c: MachineChange) => void): () => void {
    this.#listeners.add(fn);
    return () => { this.#listeners.delete(fn); };
  }

  async transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    refuseInsideTransaction(this);
    return await this.#sql.begin(async (tx) => runInsideTransaction(this, () => fn(rowsOver(new PostgresSql(tx), (c) => this.#publishOn(tx, c))))) as T;
  }

  async #migrate(): Promise<void> {
    await this.#sql.begin(async (tx) => {
      await tx.unsafe('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
      await tx.unsafe('CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)');
      const row = (await tx.unsafe("SELECT value FROM meta WHERE key = 'schema'"))[0] as unknown as { value: string } | undefined;
      const at = row === undefined ? 0 : Number(row.value);
      if (at > LATEST_SCHEMA) throw newerSchemaError(this.where, at);
      for (const m of MIGRATIONS) {
        if (m.version <= at) continue;
        for (const s of m.postgres) await tx.unsafe(s);
      }
      await tx.unsafe("INSERT INTO meta (key, value) VALUES ('schema', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [String(Math.max(at, LATEST_SCHEMA))]);
    });
  }

  async schemaVersion(): Promise<number> {
    const rows = await this.#sql.unsafe("SELECT value FROM meta WHERE key = 'schema'");
    return Number((rows[0] as unknown as { value: string }).value);
  }

  async close(): Promise<void> {
    await this.#unlisten?.().catch(() => {});
    await this.#sql.end({ timeout: 5 });
  }
}
