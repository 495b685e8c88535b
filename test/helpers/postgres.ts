// A throwaway PostgreSQL cluster for one test file: Debian's postgresql (scripts/host-deps.sh),
// initdb into a fresh temp directory, its own unix-socket directory and an ephemeral TCP port
// on 127.0.0.1, trust authentication (nothing but this machine's loopback and the socket reach
// it). The server refuses to run as root, so under root initdb and pg_ctl run as the `postgres`
// user through runuser. stop() kills it and deletes everything, also after a failed test.
// With `ssl` (a certificate and key, PEM) the cluster serves TLS (ssl = on) and accepts TCP
// connections over TLS only (pg_hba hostssl), so a client that connects did use TLS.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.ts';

const run = promisify(execFile);

export const PG_BIN = process.env.BOOTY_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** Whether this machine can start a cluster (the test's skipUnlessPresent uses it). */
export function postgresPresent(): boolean {
  return existsSync(join(PG_BIN, 'initdb')) && existsSync(join(PG_BIN, 'pg_ctl'));
}

export interface TestPostgres {
  /** postgres://postgres@127.0.0.1:PORT/DB (TCP) */
  url(db?: string): string;
  /** postgres://postgres@/DB?host=SOCKETDIR&port=PORT (unix socket, libpq's form) */
  socketUrl(db?: string): string;
  socketDir: string;
  port: number;
  /** CREATE DATABASE name (each test gets an empty one) */
  createDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** netns: start the server inside that network namespace (its 127.0.0.1 is the namespace's own;
 * the unix socket, a file, is reachable from anywhere on this host) */
export async function startPostgres(opts: { ssl?: { certFile: string; keyFile: string }; netns?: string } = {}): Promise<TestPostgres> {
  const asRoot = process.getuid?.() === 0;
  const inNs = (cmd: string, args: string[]) => opts.netns === undefined ? run(cmd, args) : run('ip', ['netns', 'exec', opts.netns, cmd, ...args]);
  const as = (cmd: string, args: string[]) => asRoot ? inNs('runuser', ['-u', 'postgres', '--', cmd, ...args]) : inNs(cmd, args);
  const top = await mkdtemp(join(tmpdir(), 'booty-pg-'));
  let owner: { uid: number; gid: number } | undefined;
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    owner = { uid: Number(stdout.trim()), gid: Number(gid.trim()) };
    await chown(top, owner.uid, owner.gid);
  }
  const data = join(top, 'data');
  const logFile = join(top, 'server.log');
  let started = false;
  const stop = async () => {
    if (started) await as(join(PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    started = false;
    await rm(top, { recursive: true, force: true });
  };
  try {
    await as(join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    let sslOpts = '';
    if (opts.ssl !== undefined) {
      // the server reads its key only when the key belongs to it and no one else may read it
      const cert = join(top, 'server.crt');
      const key = join(top, 'server.key');
      await copyFile(opts.ssl.certFile, cert);
      await copyFile(opts.ssl.keyFile, key);
      await chmod(key, 0o600);
      if (owner !== undefined) { await chown(cert, owner.uid, owner.gid); await chown(key, owner.uid, owner.gid); }
      await writeFile(join(data, 'pg_hba.conf'), 'local all all trust\nhostssl all all 127.0.0.1/32 trust\n');
      sslOpts = ` -c ssl=on -c ssl_cert_file=${cert} -c ssl_key_file=${key}`;
    }
    // A port taken between freePort() and the server's bind makes pg_ctl fail: try a few.
    let port = 0;
    for (let attempt = 0; ; attempt++) {
      port = await freePort();
      const opts = `-k ${top} -p ${port} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100${sslOpts}`;
      try {
        await as(join(PG_BIN, 'pg_ctl'), ['-D', data, '-l', logFile, '-o', opts, '-w', '-t', '60', 'start']);
        started = true;
        break;
      } catch (e) {
        if (attempt >= 3) throw new Error(`postgres did not start: ${(e as Error).message}\n${await readFile(logFile, 'utf8').catch(() => '')}`);
      }
    }
    const pg: TestPostgres = {
      port, socketDir: top,
      url: (db = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${db}`,
      socketUrl: (db = 'postgres') => `postgres://postgres@/${db}?host=${encodeURIComponent(top)}&port=${port}`,
      createDatabase: async (name) => {
        await as(join(PG_BIN, 'psql'), ['-h', top, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE "${name}"`]);
      },
      stop,
    };
    return pg;
  } catch (e) {
    await stop();
    throw e;
  }
}
