// `booty server --database`: the PostgreSQL URL forms accepted (TCP, unix socket both ways) and
// the refusals (src/server/store/postgres-url.ts). The connections themselves: test/integration/state-store.test.ts.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { isPostgresUrl, parsePostgresUrl } from '../../src/server/store/postgres-url.ts';

it('TCP: user, password, host, port, database; the password never in `where`', () => {
  const t = parsePostgresUrl('postgres://booty:s%40cret@db.example:6543/fleet');
  assert.deepEqual(t, { host: 'db.example', port: 6543, path: undefined, database: 'fleet', user: 'booty', password: 's@cret', where: 'postgres://booty@db.example:6543/fleet' });
  assert.equal(parsePostgresUrl('postgresql://u@10.0.0.5/d').port, 5432);
  assert.equal(parsePostgresUrl('postgres://u@[fd00::5]:5433/d').host, 'fd00::5');
  assert.equal(parsePostgresUrl('postgres://u@[fd00::5]:5433/d').where, 'postgres://u@[fd00::5]:5433/d');
});

it('unix socket: ?host=/dir (libpq) or the directory percent-encoded as the host', () => {
  const a = parsePostgresUrl('postgres://booty@/fleet?host=/run/postgresql');
  assert.equal(a.host, undefined);
  assert.equal(a.path, '/run/postgresql/.s.PGSQL.5432');
  assert.equal(a.database, 'fleet');
  assert.equal(parsePostgresUrl('postgres://booty@/fleet?host=%2Ftmp%2Fpg&port=6000').path, '/tmp/pg/.s.PGSQL.6000');
  assert.equal(parsePostgresUrl('postgres://booty@%2Frun%2Fpostgresql:5433/fleet').path, '/run/postgresql/.s.PGSQL.5433');
  assert.match(a.where, /unix socket/);
});

it('TLS: sslmode require, verify-ca, verify-full (with sslrootcert); disable is plaintext', () => {
  assert.deepEqual(parsePostgresUrl('postgres://u@db.example/d?sslmode=require').tls, { mode: 'require', rootCert: undefined });
  const full = parsePostgresUrl('postgres://u@db.example/d?sslmode=verify-full&sslrootcert=/etc/booty/pg-ca.pem');
  assert.deepEqual(full.tls, { mode: 'verify-full', rootCert: '/etc/booty/pg-ca.pem' });
  assert.equal(full.where, 'postgres://u@db.example:5432/d (TLS verify-full)');
  assert.deepEqual(parsePostgresUrl('postgres://u@db.example/d?sslmode=verify-ca&sslrootcert=system').tls, { mode: 'verify-ca', rootCert: 'system' });
  assert.equal(parsePostgresUrl('postgres://u@db.example/d?sslmode=disable').tls, undefined);
});

it('TLS refusals: unknown modes, modes that fall back to plaintext, a verify mode without its CA, TLS over a unix socket', () => {
  assert.throws(() => parsePostgresUrl('postgres://u:pw@h/d?sslmode=strict'), /sslmode="strict" is not a mode booty knows \(disable, require, verify-ca, verify-full\)/);
  assert.throws(() => parsePostgresUrl('postgres://u@h/d?sslmode=prefer'), /sslmode=prefer is refused: it falls back to plaintext/);
  assert.throws(() => parsePostgresUrl('postgres://u@h/d?sslmode=allow'), /sslmode=allow is refused/);
  assert.throws(() => parsePostgresUrl('postgres://u@h/d?sslmode=verify-full'), /sslmode=verify-full needs sslrootcert=FILE/);
  assert.throws(() => parsePostgresUrl('postgres://u@h/d?sslmode=require&sslrootcert=/ca.pem'), /sslrootcert goes with sslmode=verify-ca or verify-full/);
  assert.throws(() => parsePostgresUrl('postgres://u@/d?host=/run/postgresql&sslmode=require'), /over a unix socket: PostgreSQL speaks no TLS there/);
});

it('refuses what it would only half understand, naming the problem and never the password', () => {
  assert.throws(() => parsePostgresUrl('postgres://u:pw@h/d?target_session_attrs=any'), /parameter "target_session_attrs" is not supported/);
  assert.throws(() => parsePostgresUrl('postgres://u:pw@h/d?sslmode=bogus'), (e: Error) => !e.message.includes('pw'));
  assert.throws(() => parsePostgresUrl('postgres://h:5432/d'), /no user/);
  assert.throws(() => parsePostgresUrl('postgres://u@h:5432/'), /no database/);
  assert.throws(() => parsePostgresUrl('postgres://u@h:99999/d'), /not a URL|port/);
  assert.throws(() => parsePostgresUrl('postgres://u@/d'), /no host/);
  assert.throws(() => parsePostgresUrl('mysql://u@h/d'), /not a postgres/);
  assert.equal(isPostgresUrl('POSTGRESQL://u@h/d'), true);
  assert.equal(isPostgresUrl('/var/lib/booty/booty.db'), false);
});
