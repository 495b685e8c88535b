// A network for QEMU end-to-end tests of the agent (root): a network namespace holding a bridge
// with <prefix>.1/24, a tap device on it for the VM (QEMU runs inside the namespace, see
// qemu.ts NicSpec.netns), real dnsmasq handing out leases on the bridge, and a real
// `booty server` listening on <prefix>.1:3000 with a data directory of its own. Everything goes
// away in close(), which tests call from t.after.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');
let counter = 0;

function macPath(mac: string): string {
  return mac.toLowerCase().replaceAll(':', '-');
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

async function waitUntil(what: string, ok: () => boolean, failed: () => string | undefined, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    const f = failed();
    if (f !== undefined) throw new Error(f);
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export class QemuNetLab {
  readonly ns: string;
  readonly bridge: string;
  readonly tap: string;
  readonly prefix: string;
  readonly dir: string;
  readonly dataDir: string;
  readonly serverUrl: string;
  dnsmasqLog = '';
  serverLog = '';
  #children: ChildProcess[] = [];

  constructor(prefix: string) {
    const id = `${process.pid % 10000}${counter++}`;
    this.ns = `booty-q${id}`;
    this.bridge = `bq${id}`;
    this.tap = `tq${id}`;
    this.prefix = prefix;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-qemu-lab-'));
    this.dataDir = path.join(this.dir, 'server');
    this.serverUrl = `http://${prefix}.1:3000`;
    try {
      ip('netns', 'add', this.ns);
      ip('-n', this.ns, 'link', 'set', 'lo', 'up');
      ip('-n', this.ns, 'link', 'add', this.bridge, 'type', 'bridge');
      ip('-n', this.ns, 'addr', 'add', `${prefix}.1/24`, 'dev', this.bridge);
      ip('-n', this.ns, 'link', 'set', this.bridge, 'up');
      ip('-n', this.ns, 'tuntap', 'add', 'dev', this.tap, 'mode', 'tap');
      ip('-n', this.ns, 'link', 'set', this.tap, 'master', this.bridge);
      ip('-n', this.ns, 'link', 'set', this.tap, 'up');
    } catch (e) {
      this.#remove();
      throw e;
    }
  }

  /** dnsmasq on the bridge: leases <prefix>.50-.99, router option = <prefix>.1. */
  async startDnsmasq(): Promise<void> {
    const child = spawn('ip', [
      'netns', 'exec', this.ns, 'dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0',
      '--bind-interfaces', `--interface=${this.bridge}`, '--except-interface=lo',
      `--dhcp-range=${this.prefix}.50,${this.prefix}.99,600`, `--dhcp-option=option:router,${this.prefix}.1`,
      `--dhcp-leasefile=${path.join(this.dir, 'leases')}`, `--pid-file=${path.join(this.dir, 'dnsmasq.pid')}`,
      '--log-facility=-', '--log-dhcp',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#children.push(child);
    const collect = (s: string) => { this.dnsmasqLog += s; };
    child.stdout!.setEncoding('utf8').on('data', collect);
    child.stderr!.setEncoding('utf8').on('data', collect);
    await waitUntil('dnsmasq start', () => /DHCP, IP range/.test(this.dnsmasqLog),
      () => (child.exitCode !== null ? `dnsmasq exited (${child.exitCode}):\n${this.dnsmasqLog}` : undefined), 15_000);
  }

  /** `booty server` inside the namespace on <prefix>.1:3000, data in this.dataDir. */
  async startServer(): Promise<void> {
    fs.mkdirSync(this.dataDir, { recursive: true });
    const child = spawn('ip', ['netns', 'exec', this.ns, path.join(root, 'bin', 'booty'), 'server', '--data', this.dataDir, '--listen', `${this.prefix}.1:3000`], {
      stdio: ['ignore', 'pipe', 'pipe'], cwd: root,
    });
    this.#children.push(child);
    const collect = (s: string) => { this.serverLog += s; };
    child.stdout!.setEncoding('utf8').on('data', collect);
    child.stderr!.setEncoding('utf8').on('data', collect);
    await waitUntil('booty server start', () => /listening on http/.test(this.serverLog),
      () => (child.exitCode !== null ? `booty server exited (${child.exitCode}):\n${this.serverLog}` : undefined), 30_000);
  }

  /** An HTTP request to the server from inside the namespace (curl), returning the body. */
  api(method: string, urlPath: string, body?: string): string {
    const args = ['netns', 'exec', this.ns, 'curl', '-sS', '--fail-with-body', '-X', method, `${this.serverUrl}${urlPath}`];
    if (body !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', '@-');
    return execFileSync('ip', args, { encoding: 'utf8', input: body ?? '' });
  }

  /** Sets the action for `mac` through the server's API. */
  setAction(mac: string, action: object): void {
    this.api('PUT', `/api/machines/${macPath(mac)}/action`, JSON.stringify(action));
  }

  /** Copies a file into the server's image directory; returns its URL as the VM sees it. */
  addImage(file: string, name = path.basename(file)): string {
    const dir = path.join(this.dataDir, 'images');
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(file, path.join(dir, name));
    return `${this.serverUrl}/images/${name}`;
  }

  /** What the server knows about a machine (GET /api/machines/<mac>), with up to 1000 log lines. */
  machine(mac: string): Record<string, unknown> | undefined {
    try {
      return JSON.parse(this.api('GET', `/api/machines/${macPath(mac)}?lines=1000`)) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }

  #remove(): void {
    try { execFileSync('ip', ['netns', 'del', this.ns], { stdio: 'ignore' }); } catch { /* not created */ }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async close(): Promise<void> {
    for (const c of this.#children) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    this.#remove();
  }
}
