// `booty server --database URL`: which PostgreSQL to use, parsed here (not by the client, which
// would also read PG* environment variables, so what runs is what the operator wrote):
//
//   postgres://USER[:PASSWORD]@HOST[:PORT]/DB        TCP (postgresql:// too; [v6] hosts)
//   postgres://USER@/DB?host=/run/postgresql[&port=5432]   unix socket directory (libpq's form)
//   postgres://USER@%2Frun%2Fpostgresql[:PORT]/DB      the same, the directory percent-encoded
//
// TLS, target_session_attrs and the other libpq parameters are not accepted yet: a URL that
// carries one is refused rather than half understood.

export interface PostgresTarget {
  host?: string;
  port: number;
  /** the socket file (DIR/.s.PGSQL.PORT) for a unix socket */
  path?: string;
  database: string;
  user: string;
  password?: string;
  /** for messages: the URL without its password */
  where: string;
}

export function isPostgresUrl(s: string): boolean {
  return /^postgres(ql)?:\/\//i.test(s);
}

export function parsePostgresUrl(s: string): PostgresTarget {
  const bad = (why: string) => new Error(`--database ${JSON.stringify(s.replace(/:[^:@/]*@/, ':***@'))}: ${why}; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DB or postgres://USER@/DB?host=/socket/dir`);
  if (!isPostgresUrl(s)) throw bad('not a postgres:// URL');
  let u: URL;
  // URL cannot parse an empty host with user info ("user@/db"): give it a placeholder
  const rest = s.replace(/^postgres(ql)?:\/\//i, '');
  const emptyHost = /^[^/?#]*@(?=[/?#]|$)/.test(rest) || /^(?=[/?#])/.test(rest);
  try { u = new URL(`postgres://${emptyHost ? rest.replace(/^([^/?#]*@)?/, (m) => `${m}__socket__`) : rest}`); } catch { throw bad('not a URL'); }
  const user = decodeURIComponent(u.username);
  if (user === '') throw bad('no user (postgres://USER@...)');
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (database === '' || database.includes('/')) throw bad('no database name (.../DB)');
  let host: string | undefined = emptyHost ? undefined : decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, '$1');
  let port = u.port === '' ? 5432 : Number(u.port);
  for (const [k, v] of u.searchParams) {
    if (k === 'host') host = v;
    else if (k === 'port') port = Number(v);
    else throw bad(`parameter "${k}" is not supported`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad('port must be 1-65535');
  if (host === undefined || host === '') throw bad('no host, and no ?host=/socket/dir');
  const socket = host.startsWith('/');
  const password = u.password === '' ? undefined : decodeURIComponent(u.password);
  return {
    host: socket ? undefined : host, port, path: socket ? `${host}/.s.PGSQL.${port}` : undefined,
    database, user, password,
    where: socket ? `postgres://${user}@${host}:${port}/${database} (unix socket)` : `postgres://${user}@${host.includes(':') ? `[${host}]` : host}:${port}/${database}`,
  };
}
