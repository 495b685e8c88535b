// booty server's embedded database: DIR/booty.db, SQLite through node:sqlite (built into the
// pinned Node; no native package). Holds machines (action, one-shot state, last report), runs
// (one per boot of the agent: phases, bytes, rate, result) and their log lines, so all of it
// survives a restart. Opened by the state store's SQLite backend (store/sqlite-store.ts), which
// applies migrations.ts on top of this schema (version 1); the server uses it only through the store.

import { DatabaseSync } from 'node:sqlite';

const SCHEMA_VERSION = 1;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS machines (
  mac            TEXT PRIMARY KEY,
  name           TEXT,
  action         TEXT,              -- normalized action JSON; NULL: none of its own
  managed_by     TEXT,              -- 'file' (DIR/machines/<mac>.json) or 'api'
  action_error   TEXT,              -- the machine's file does not validate (never served)
  file_sig       TEXT,              -- size/mtime/inode of the file last imported
  persistent     INTEGER NOT NULL DEFAULT 0,
  one_shot_done  TEXT,              -- when a successful run consumed the action
  created        TEXT NOT NULL,
  updated        TEXT NOT NULL,
  state          TEXT               -- JSON: last phase, progress, result, seen times
);
CREATE TABLE IF NOT EXISTS runs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  mac         TEXT NOT NULL,
  started     TEXT NOT NULL,
  ended       TEXT,
  action      TEXT,                 -- what the run did (summary of the action served)
  phase       TEXT,
  phases      TEXT NOT NULL DEFAULT '[]',  -- JSON [{phase, time}]
  bytes       INTEGER,
  total       INTEGER,
  wire_bytes  INTEGER,
  rate        REAL,
  ok          INTEGER,              -- NULL while running or when it never reported a result
  code        TEXT,
  error       TEXT,
  disk_state  TEXT,
  seconds     REAL,
  sha256      TEXT,
  result_action TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_mac ON runs (mac, id);
CREATE TABLE IF NOT EXISTS logs (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  mac     TEXT NOT NULL,
  run_id  INTEGER,
  line    TEXT NOT NULL,
  at      INTEGER                   -- when the server received it (ms since 1970): log retention
);
CREATE INDEX IF NOT EXISTS logs_by_mac ON logs (mac, id);
CREATE INDEX IF NOT EXISTS logs_by_run ON logs (run_id, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- added after schema 1, additive (older servers ignore it): each machine's last hardware inventory
CREATE TABLE IF NOT EXISTS inventory (
  mac       TEXT PRIMARY KEY,
  received  TEXT NOT NULL,
  facts     TEXT NOT NULL             -- JSON: src/config/inventory.ts MachineInventory
);
-- added after schema 1, additive: each machine's last trial boot (bootOrder "trial")
CREATE TABLE IF NOT EXISTS trials (
  mac       TEXT PRIMARY KEY,
  record    TEXT NOT NULL             -- JSON: src/server/machines/trial-boot.ts TrialRecord
);
`;

/** `newestKnown`: the newest schema the caller can migrate to (the state store's migrations.ts);
 *  a database past it was written by a newer server and is refused. */
export function openDatabase(file: string, opts: { newestKnown?: number } = {}): DatabaseSync {
  const newestKnown = opts.newestKnown ?? SCHEMA_VERSION;
  const db = new DatabaseSync(file);
  // WAL: readers never wait for the writer; NORMAL: a power cut may lose the last second of
  // progress, never the file's consistency.
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = OFF;');
  db.exec(SCHEMA);
  addLogTimes(db);
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as { value: string } | undefined;
  if (row === undefined) db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(String(SCHEMA_VERSION));
  else if (Number(row.value) > newestKnown) {
    db.close();
    throw new Error(`${file} was written by a newer booty server (schema ${row.value}, this one knows ${newestKnown})`);
  }
  return db;
}

/**
 * logs.at came after schema 1: a database without it gets the column (older servers leave it
 * NULL, which age-based pruning never matches), and its lines count as received now, so they
 * are kept for the retention period from the upgrade on.
 */
function addLogTimes(db: DatabaseSync): void {
  const columns = db.prepare('PRAGMA table_info(logs)').all() as { name: string }[];
  if (!columns.some((c) => c.name === 'at')) {
    db.exec('ALTER TABLE logs ADD COLUMN at INTEGER');
    db.prepare('UPDATE logs SET at = ?').run(Date.now());
  }
  db.exec('CREATE INDEX IF NOT EXISTS logs_by_time ON logs (at)');
}

/** Run `fn` in one transaction (one fsync instead of one per statement). */
export function inTransaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec('BEGIN');
  try {
    const r = fn();
    db.exec('COMMIT');
    return r;
  } catch (e) {
    db.exec('ROLLBACK');
    throw e;
  }
}
