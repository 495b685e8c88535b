// `booty server --database URL`: which PostgreSQL to use, parsed here (not by the client, which
// would also read PG* environment variables, so what runs is what the operator wrote):
//
//   postgres://USER[:PASSWORD]@HOST[:PORT]/DB        TCP (postgresql:// too; [v6] hosts)
//   postgres://USER@/DB?host=/run/postgresql[&port=5432]   unix socket directory (libpq's form)
//   postgres://USER@%2Frun%2Fpostgresql[:PORT]/DB      the same, the directory percent-encoded
//
//   ...?sslmode=require                                TLS, the server's certificate not checked
//   ...?sslmode=verify-full&sslrootcert=/etc/booty/pg-ca.pem   TLS, certificate signed by that CA
//                                                      and naming the host (sslrootcert=system: the
//                                                      CAs Node.js ships); verify-ca: CA only
//
// sslmode prefer and allow (libpq's default is prefer) are refused: they fall back to plaintext
// without a word when TLS fails, so the operator could not tell which one ran. sslmode=disable
// is plaintext, as without the parameter. target_session_attrs and the other libpq parameters are
// not accepted: a URL that carries one is refused rather than half understood.

export interface PostgresTarget {
  host?: string;
  port: number;
  /** the socket file (DIR/.s.PGSQL.PORT) for a unix socket */
  path?: string;
  database: string;
  user: string;
  password?: string;
  /** TLS (sslmode require, verify-ca, verify-full); undefined: plaintext */
  tls?: { mode: TlsMode; rootCert?: string };
  /** for messages: the URL without its password */
  where: string;
}

export type TlsMode = 'require' | 'verify-ca' | 'verify-full';
const TLS_MODES = ['disable', 'require', 'verify-ca', 'verify-full'];

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
  let sslmode: string | undefined;
  let rootCert: string | undefined;
  for (const [k, v] of u.searchParams) {
    if (k === 'host') host = v;
    else if (k === 'port') port = Number(v);
    else if (k === 'sslmode') sslmode = v;
    else if (k === 'sslrootcert') rootCert = v;
    else throw bad(`parameter "${k}" is not supported (sslmode and sslrootcert are)`);
  }
  if (sslmode !== undefined && !TLS_MODES.includes(sslmode)) {
    throw bad(sslmode === 'prefer' || sslmode === 'allow'
      ? `sslmode=${sslmode} is refused: it falls back to plaintext without a word when TLS fails; use sslmode=require, verify-ca or verify-full (or disable)`
      : `sslmode=${JSON.stringify(sslmode)} is not a mode booty knows (disable, require, verify-ca, verify-full)`);
  }
  const mode = sslmode === undefined || sslmode === 'disable' ? undefined : sslmode as TlsMode;
  if (rootCert !== undefined && (mode === undefined || mode === 'require')) throw bad('sslrootcert goes with sslmode=verify-ca or verify-full (require checks no certificate)');
  if ((mode === 'verify-ca' || mode === 'verify-full') && (rootCert === undefined || rootCert === '')) throw bad(`sslmode=${mode} needs sslrootcert=FILE (the CA certificate, PEM) or sslrootcert=system`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad('port must be 1-65535');
  if (host === undefined || host === '') throw bad('no host, and no ?host=/socket/dir');
  const socket = host.startsWith('/');
  if (socket && mode !== undefined) throw bad(`sslmode=${mode} over a unix socket: PostgreSQL speaks no TLS there (the socket's permissions are its protection); use a TCP host for TLS`);
  const password = u.password === '' ? undefined : decodeURIComponent(u.password);
  return {
    host: socket ? undefined : host, port, path: socket ? `${host}/.s.PGSQL.${port}` : undefined,
    database, user, password, ...(mode === undefined ? {} : { tls: { mode, rootCert } }),
    where: socket ? `postgres://${user}@${host}:${port}/${database} (unix socket)` : `postgres://${user}@${host.includes(':') ? `[${host}]` : host}:${port}/${database}${mode === undefined ? '' : ` (TLS ${mode})`}`,
  };
}
