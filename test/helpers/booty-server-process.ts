// Start the real `./bin/booty server` (on the pinned node) on 127.0.0.1:<free port> with a data
// directory of its own, for integration tests. Collects stderr (the request log) and stops the
// process on close(), also when the test failed.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { networkInterfaces } from 'node:os';

const root = resolve(import.meta.dirname, '..', '..');

// Data directories this process made and has not removed yet, and servers still running: a test
// that fails before its close(), or forgets it, must not leave a server or a
// booty-server-test-* directory behind when its process ends.
const madeDirs = new Set<string>();
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
  for (const d of madeDirs) rmSync(d, { recursive: true, force: true });
});

export interface BootyServerProcess {
  url: string;
  dataDir: string;
  child: ChildProcess;
  /** the request log so far */
  stderr(): string;
  /** what the server printed on stdout (the listening line, a TLS pin) */
  stdout(): string;
  /** the JSON-lines records of stderr so far (lines that are not JSON are skipped) */
  logRecords(): Record<string, unknown>[];
  /** stop the server (SIGTERM, then SIGKILL) and, unless keepData, remove the data directory */
  close(opts?: { keepData?: boolean }): Promise<void>;
}

/** `listen`: default 127.0.0.1:0 (this host: an operator while the server has no operator token) */
export async function startBootyServer(opts: { dataDir?: string; args?: string[]; listen?: string } = {}): Promise<BootyServerProcess> {
  const dataDir = opts.dataDir ?? await mkdtemp(join(tmpdir(), 'booty-server-test-'));
  if (opts.dataDir === undefined) madeDirs.add(dataDir);
  const child = spawn(join(root, 'bin', 'booty'), ['server', '--data', dataDir, '--listen', opts.listen ?? '127.0.0.1:0', ...(opts.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { err += s; });
  const url = await new Promise<string>((ok, fail) => {
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /listening on (https?:\/\/\S+)/.exec(out);
      if (m !== null) ok(m[1]);
    });
    child.once('exit', (code) => fail(new Error(`booty server exited (${code}) before listening:\n${err}`)));
  });
  live.add(child);
  const exited = new Promise<void>((ok) => {
    if (child.exitCode !== null || child.signalCode !== null) ok(); else child.once('exit', () => ok());
  });
  void exited.then(() => live.delete(child));
  return {
    url, dataDir, child,
    stderr: () => err,
    stdout: () => out,
    logRecords: () => err.split('\n').flatMap((l) => {
      if (!l.startsWith('{')) return [];
      try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; }
    }),
    async close({ keepData = false } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT'); // in case a test stopped it
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      if (!keepData && opts.dataDir === undefined) {
        await rm(dataDir, { recursive: true, force: true });
        madeDirs.delete(dataDir);
      }
    },
  };
}

/** The catalog's gzip index state of each image (`GET /api/images`). */
export async function gzipIndexStates(url: string): Promise<Map<string, string | undefined>> {
  const res = await fetch(`${url}/api/images`);
  const body = await res.json() as { images: Array<{ name: string; gzipIndex?: string }> };
  return new Map(body.images.map((i) => [i.name, i.gzipIndex]));
}

/** Waits (up to `timeoutMs`) until the server's background indexer has settled on `name`:
 *  'ready', or 'refused: <why>'. Asks for a reload first (images put in place by hand). */
export async function waitForGzipIndex(url: string, name: string, timeoutMs = 60_000): Promise<string> {
  await (await fetch(`${url}/api/reload`, { method: 'POST' })).body?.cancel();
  const until = Date.now() + timeoutMs;
  let state: string | undefined;
  while (Date.now() < until) {
    state = (await gzipIndexStates(url)).get(name);
    if (state === 'ready' || state?.startsWith('refused') === true) return state;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the gzip index of ${name} did not settle within ${timeoutMs} ms (last: ${state})`);
}

/** Machine `mac`'s agent credential (GET /api/machines/<mac>/credential, an operator route). */
export async function agentCredentialOf(url: string, mac: string, operatorToken?: string): Promise<string> {
  const res = await fetch(`${url}/api/machines/${mac}/credential`, { headers: operatorToken === undefined ? {} : { authorization: `Bearer ${operatorToken}` } });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /api/machines/${mac}/credential: ${res.status} ${text}`);
  return (JSON.parse(text) as { credential: string }).credential;
}

/** This host's first non-loopback IPv4 address (to call a server as a machine on the network would), if any. */
export function nonLoopbackAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}
