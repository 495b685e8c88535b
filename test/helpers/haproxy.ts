// Debian's haproxy (scripts/host-deps.sh) in front of booty server replicas, for one test: writes
// a config into a temp directory and runs haproxy in the foreground (-db), on the host's loopback
// (an ephemeral port) or inside a network namespace (any address and port there). Health checks
// are GET /ipxe (public: no credential; answered by every replica), every 500 ms, two failures
// take a replica out; `option redispatch` and `retries` send a request whose connection failed to
// the other replica. Tracker announces (/p2p/<rack>/announce) go to one replica per rack
// (`balance uri`, consistent hash): a replica's trackers are in its memory, so all peers of a rack
// must announce to the same one; when it goes down its racks move to another. X-Forwarded-For
// names the client (booty server --p2p-trusted-proxy reads it for announces only). The admin
// socket is a unix socket in the temp directory: reachable from the host whatever namespace
// haproxy runs in (serverStates, waitUp). stop() kills it and deletes the directory, also after a
// failed test.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.ts';

export function haproxyPresent(): boolean {
  try { execFileSync('sh', ['-c', 'command -v haproxy'], { stdio: 'ignore' }); return true; } catch { return false; }
}

export interface TestHaproxy {
  /** http://ADDR:PORT, where clients connect */
  url: string;
  child: ChildProcess;
  /** haproxy's log so far (one line per request, health check changes) */
  log(): string;
  /** each backend server's operational state: 'UP' | 'DOWN' | ... by "backend/server" */
  serverStates(): Promise<Record<string, string>>;
  /** resolves once every server of the replicas backend is UP */
  waitUp(limitMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface HaproxyOptions {
  /** host:port of each replica, as haproxy (in its namespace) reaches it */
  backends: string[];
  /** address:port to bind; default 127.0.0.1 and an ephemeral port (host namespace) */
  listen?: string;
  /** run inside this network namespace (ip netns exec) */
  netns?: string;
}

export function haproxyConfig(o: { listen: string; backends: string[]; socket: string }): string {
  const servers = (check: string) => o.backends.map((b, i) => `  server r${i + 1} ${b} ${check}`).join('\n');
  return `global
  log stderr format raw local0 info
  stats socket ${o.socket} mode 600 level admin
  maxconn 2000

defaults
  mode http
  log global
  option httplog
  option forwardfor
  option redispatch
  retries 3
  timeout connect 2s
  timeout client 10m
  timeout server 10m
  timeout http-request 30s
  default-server inter 500ms fall 2 rise 2

frontend booty
  bind ${o.listen}
  use_backend trackers if { path_beg /p2p/ }
  default_backend replicas

backend replicas
  balance roundrobin
  option httpchk
  http-check send meth GET uri /ipxe ver HTTP/1.1 hdr Host booty
  http-check expect status 200
${servers('check')}

backend trackers
  balance uri
  hash-type consistent
  option httpchk
  http-check send meth GET uri /ipxe ver HTTP/1.1 hdr Host booty
  http-check expect status 200
${servers('check')}
`;
}

/** One command on the admin socket; its whole answer. */
function adminCommand(socket: string, command: string): Promise<string> {
  return new Promise((ok, fail) => {
    const c = createConnection(socket);
    let out = '';
    c.setEncoding('utf8');
    c.on('data', (s: string) => { out += s; });
    c.on('error', fail);
    c.on('end', () => ok(out));
    c.on('connect', () => c.write(`${command}\n`));
  });
}

export async function startHaproxy(o: HaproxyOptions): Promise<TestHaproxy> {
  const dir = await mkdtemp(join(tmpdir(), 'booty-haproxy-'));
  const socket = join(dir, 'admin.sock');
  const listen = o.listen ?? `127.0.0.1:${await freePort()}`;
  const cfg = join(dir, 'haproxy.cfg');
  await writeFile(cfg, haproxyConfig({ listen, backends: o.backends, socket }));
  try {
    execFileSync('haproxy', ['-c', '-q', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`haproxy refused the config: ${String((e as { stderr?: Buffer }).stderr ?? e)}`);
  }
  const args = ['-db', '-f', cfg];
  const child = o.netns === undefined ? spawn('haproxy', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('ip', ['netns', 'exec', o.netns, 'haproxy', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { log += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { log += s; });
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  const serverStates = async (): Promise<Record<string, string>> => {
    // show stat: CSV, # pxname,svname,...,status (column 18)
    const csv = await adminCommand(socket, 'show stat');
    const rows = csv.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(','));
    const out: Record<string, string> = {};
    for (const r of rows) if (r[1] !== 'FRONTEND' && r[1] !== 'BACKEND') out[`${r[0]}/${r[1]}`] = r[17];
    return out;
  };
  const h: TestHaproxy = {
    url: `http://${listen}`,
    child,
    log: () => log,
    serverStates,
    async waitUp(limitMs = 30_000) {
      const until = Date.now() + limitMs;
      let last: Record<string, string> = {};
      for (;;) {
        if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}):\n${log.slice(-2000)}`);
        try {
          last = await serverStates();
          const replicas = Object.entries(last).filter(([k]) => k.startsWith('replicas/'));
          if (replicas.length === o.backends.length && replicas.every(([, s]) => s === 'UP')) return;
        } catch { /* the socket is not there yet */ }
        if (Date.now() > until) throw new Error(`haproxy: replicas not all UP within ${limitMs / 1000} s: ${JSON.stringify(last)}\n${log.slice(-2000)}`);
        await new Promise((ok) => setTimeout(ok, 200));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  return h;
}
