// Which state store booty server uses: `--database postgres://...` for PostgreSQL (replicas),
// otherwise SQLite in DIR/booty.db (also `--database sqlite:FILE` or a plain file path).

import { join, resolve } from 'node:path';
import { PostgresStore } from './postgres-store.ts';
import { isPostgresUrl, parsePostgresUrl } from './postgres-url.ts';
import { SqliteStore } from './sqlite-store.ts';
import type { StateStore } from './state-store.ts';

export async function openStateStore(o: { dataDir: string; database?: string }): Promise<StateStore> {
  const d = o.database?.trim();
  if (d === undefined || d === '') return SqliteStore.open(join(o.dataDir, 'booty.db'));
  if (isPostgresUrl(d)) return PostgresStore.open(parsePostgresUrl(d));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(d)) throw new Error(`--database ${JSON.stringify(d)}: only postgres:// URLs and SQLite files are supported`);
  return SqliteStore.open(resolve(d.replace(/^sqlite:/i, '')));
}
