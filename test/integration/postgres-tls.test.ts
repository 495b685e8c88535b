// TLS to PostgreSQL (`--database postgres://...?sslmode=...`, src/server/store/postgres-url.ts and
// postgres-store.ts) against Debian's PostgreSQL serving a certificate that openssl makes here,
// signed by a throwaway CA; the cluster takes TCP connections over TLS only (hostssl), so a store
// that opens did speak TLS. verify-full with the CA that signed it connects; with another CA it is
// refused, saying the certificate is not trusted; a plaintext URL is refused by the server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LATEST_SCHEMA } from '../../src/server/store/migrations.ts';
import { openStateStore } from '../../src/server/store/open-store.ts';
import { startBootyServer } from '../helpers/booty-server-process.ts';
import { postgresPresent, startPostgres } from '../helpers/postgres.ts';
import type { TestPostgres } from '../helpers/postgres.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const run = promisify(execFile);
const skip = skipUnlessPresent(postgresPresent(), 'PostgreSQL is not installed (scripts/host-deps.sh: postgresql)');

describe('TLS to PostgreSQL', { skip }, () => {
  let pg: TestPostgres;
  let dir: string;
  let url: (query: string) => string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'booty-pg-tls-'));
    const f = (n: string) => join(dir, n);
    const openssl = (...args: string[]) => run('openssl', args);
    // two CAs: the one that signs the server's certificate, and a stranger
    for (const ca of ['ca', 'other-ca']) {
      await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${ca}.key`), '-out', f(`${ca}.pem`), '-subj', `/CN=booty test ${ca}`, '-days', '2');
    }
    await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
    await writeFile(f('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    await openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('san.ext'));
    pg = await startPostgres({ ssl: { certFile: f('server.pem'), keyFile: f('server.key') } });
    await pg.createDatabase('booty');
    url = (query) => `${pg.url('booty')}${query}`;
  });

  after(async () => {
    await pg?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('sslmode=verify-full with the CA that signed the server certificate connects (and migrates)', async () => {
    const store = await openStateStore({ dataDir: dir, database: url(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(join(dir, 'ca.pem'))}`) });
    try {
      assert.equal(store.kind, 'postgres');
      assert.match(store.where, /\(TLS verify-full\)$/);
      assert.equal(await store.schemaVersion(), LATEST_SCHEMA);
    } finally { await store.close(); }
  });

  it('sslmode=verify-full with another CA is refused, saying the certificate is not trusted', async () => {
    await assert.rejects(openStateStore({ dataDir: dir, database: url(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(join(dir, 'other-ca.pem'))}`) }),
      /database postgres:\/\/postgres@127\.0\.0\.1:\d+\/booty \(TLS verify-full\): the server's TLS certificate is not trusted \(sslmode=verify-full, sslrootcert=.*other-ca\.pem\): unable to verify the first certificate; nothing was sent to it\. Give the CA that signed the server's certificate as sslrootcert$/);
  });

  it('sslmode=require connects without checking the certificate; no sslmode (plaintext) is refused by this server', async () => {
    const store = await openStateStore({ dataDir: dir, database: url('?sslmode=require') });
    await store.close();
    await assert.rejects(openStateStore({ dataDir: dir, database: url('') }), /no pg_hba\.conf entry .*no encryption/);
  });

  it('a missing sslrootcert file is named before connecting', async () => {
    await assert.rejects(openStateStore({ dataDir: dir, database: url(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(join(dir, 'absent.pem'))}`) }),
      /cannot read sslrootcert .*absent\.pem: ENOENT/);
  });

  it('booty server: starts with verify-full and the right CA; with the wrong CA it does not start, saying why', async () => {
    const ok = await startBootyServer({ args: ['--database', url(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(join(dir, 'ca.pem'))}`)] });
    try {
      assert.equal((await fetch(`${ok.url}/api/machines`)).status, 200);
    } finally { await ok.close(); }
    const refused = await startBootyServer({ args: ['--database', url(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(join(dir, 'other-ca.pem'))}`)] })
      .then(async (s) => { await s.close(); return undefined; }, (e: Error) => e.message);
    assert.ok(refused !== undefined, 'the server must not start');
    assert.match(refused, /cannot start: database .*the server's TLS certificate is not trusted/);
  });
});
