// Debian's nginx as a plain static origin for the bench: its own prefix, config and logs in a
// temp dir, listening where the caller says (loopback, or a lab bridge address when started
// inside a network namespace), serving one directory. What operators put images on when they do
// not use booty server: Range, ETag, sendfile, no checksum headers.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface NginxOrigin {
  /** http://HOST:PORT (no trailing slash) */
  url: string;
  /** the directory it serves: link or copy images here */
  root: string;
  close(): Promise<void>;
  /** for exit handlers: SIGTERM (the master stops its worker) and remove its directory, synchronously */
  kill(): void;
}

export function nginxBinary(): string | undefined {
  for (const p of ['/usr/sbin/nginx', '/usr/bin/nginx']) if (fs.existsSync(p)) return p;
  return undefined;
}

/** A free TCP port on host (asked of the kernel, then released: nginx binds it right after). */
async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts nginx in the foreground serving `serve` (a fresh empty dir when omitted). With `netns`
 * it runs inside that namespace (`ip netns exec`) and `host` must be an address there; the port
 * is then fixed by the caller.
 */
export async function startNginx(opts: { host?: string; port?: number; netns?: string; serve?: string } = {}): Promise<NginxOrigin> {
  const bin = nginxBinary();
  if (bin === undefined) throw new Error('bench: nginx is missing; run scripts/host-deps.sh');
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (opts.netns === undefined ? await freePort(host) : 8080);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-bench-nginx-'));
  const root = opts.serve ?? path.join(dir, 'www');
  fs.mkdirSync(root, { recursive: true });
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs']) fs.mkdirSync(path.join(dir, d));
  // user root: the temp dir is 0700 and the bench runs as root; one worker, as a small origin.
  const conf = `
user root;
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  types { }
  default_type application/octet-stream;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen ${host}:${port};
    root ${root};
    location / { }
  }
}
`;
  const confFile = path.join(dir, 'nginx.conf');
  fs.writeFileSync(confFile, conf);
  const args = ['-p', dir, '-c', confFile];
  const inNs = (cmd: string[]) => (opts.netns === undefined ? cmd : ['ip', 'netns', 'exec', opts.netns, ...cmd]);
  const [tcmd, ...targs] = inNs([bin, ...args, '-t']);
  const test = spawnSync(tcmd, targs, { encoding: 'utf8' });
  if (test.status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`bench: nginx refused its config: ${test.stderr}`);
  }
  const [cmd, ...cargs] = inNs([bin, ...args]);
  const child: ChildProcess = spawn(cmd, cargs, { stdio: ['ignore', 'ignore', 'pipe'] });
  let errors = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { errors += s; });
  const url = `http://${host}:${port}`;
  // ready once its pid file exists and it still runs
  const deadline = Date.now() + 15_000;
  while (!fs.existsSync(path.join(dir, 'nginx.pid'))) {
    const failed = child.exitCode !== null ? `exited (${child.exitCode}): ${errors}${readOr(path.join(dir, 'logs/error.log'))}`
      : Date.now() > deadline ? `did not start within 15 s: ${errors}` : undefined;
    if (failed !== undefined) {
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`bench: nginx ${failed}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url, root,
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        // SIGQUIT would wait for transfers; the bench is done with them
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
    kill: () => {
      // SIGTERM, not SIGKILL: a killed master leaves its worker running (found orphaned after a
      // bench was interrupted); TERM makes the master stop the worker, after we are gone too
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readOr(f: string): string {
  try { return fs.readFileSync(f, 'utf8'); } catch { return ''; }
}
