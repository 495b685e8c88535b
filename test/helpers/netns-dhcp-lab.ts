// A two-namespace network for DHCP/rtnetlink integration tests (root): a "server" namespace
// whose end of a veth pair has <prefix>.1/24 and runs real dnsmasq, and a "client" namespace
// holding the other end, bare (down, no address), where `booty net` runs as the agent would.
// Everything (namespaces, dnsmasq, booty processes, temp files) goes away in close(), which tests
// call from finally.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');
let counter = 0;

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function hasDnsmasq(): boolean {
  try { execFileSync('dnsmasq', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

/** A running `booty net` (or any command) inside the client namespace, with its output. */
export class NetnsProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  #waiters: (() => void)[] = [];

  constructor(child: ChildProcess) {
    this.child = child;
    child.stdout!.setEncoding('utf8').on('data', (s: string) => { this.stdout += s; this.#wake(); });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { this.stderr += s; this.#wake(); });
    this.exited = new Promise((resolve) => child.once('exit', (code) => { this.#wake(); resolve(code); }));
  }

  #wake(): void { for (const w of this.#waiters.splice(0)) w(); }

  /** JSON events printed with --json */
  events(): Record<string, unknown>[] {
    return this.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Waits until check() returns a value; fails after timeoutMs (a generous bound, not a timing assertion). */
  async waitFor<T>(what: string, check: () => T | undefined, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`process exited (${this.child.exitCode ?? this.child.signalCode}) while waiting for ${what}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 500);
        this.#waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  waitForEvent(name: string, after = 0, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    return this.waitFor(`event '${name}'`, () => this.events().slice(after).find((e) => e.event === name), timeoutMs);
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      const code = await this.exited;
      clearTimeout(t);
      return code;
    }
    return this.exited;
  }
}

export class DhcpLab {
  readonly serverNs: string;
  readonly clientNs: string;
  readonly serverIf: string;
  readonly clientIf: string;
  readonly prefix: string;
  readonly dir: string;
  readonly leaseFile: string;
  dnsmasq: ChildProcess | undefined;
  dnsmasqLog = '';
  #procs: NetnsProcess[] = [];

  constructor(prefix: string) {
    const id = `${process.pid % 100000}${counter++}`;
    this.serverNs = `booty-s${id}`;
    this.clientNs = `booty-c${id}`;
    this.serverIf = `bs${id}`;
    this.clientIf = `bc${id}`;
    this.prefix = prefix;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-dhcp-lab-'));
    this.leaseFile = path.join(this.dir, 'leases');
    try {
      ip('netns', 'add', this.serverNs);
      ip('netns', 'add', this.clientNs);
      ip('link', 'add', this.serverIf, 'netns', this.serverNs, 'type', 'veth', 'peer', 'name', this.clientIf, 'netns', this.clientNs);
      ip('-n', this.serverNs, 'link', 'set', 'lo', 'up');
      ip('-n', this.serverNs, 'link', 'set', this.serverIf, 'up');
      ip('-n', this.serverNs, 'addr', 'add', `${prefix}.1/24`, 'dev', this.serverIf);
    } catch (e) {
      this.#removeNamespaces();
      throw e;
    }
  }

  #removeNamespaces(): void {
    for (const ns of [this.clientNs, this.serverNs]) {
      try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* not created */ }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  get clientMac(): string {
    return ip('-n', this.clientNs, '-j', 'link', 'show', this.clientIf).match(/"address":"([0-9a-f:]{17})"/)![1];
  }

  /** Starts dnsmasq serving <prefix>.50-.99 with the given lease time and extra options. */
  async startDnsmasq(opts: { leaseTime?: number; extra?: string[] } = {}): Promise<void> {
    const args = [
      'netns', 'exec', this.serverNs, 'dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0',
      '--bind-interfaces', `--interface=${this.serverIf}`, '--except-interface=lo',
      `--dhcp-range=${this.prefix}.50,${this.prefix}.99,${opts.leaseTime ?? 120}`,
      `--dhcp-leasefile=${this.leaseFile}`, `--pid-file=${path.join(this.dir, 'pid')}`,
      '--log-facility=-', '--log-dhcp', ...(opts.extra ?? []),
    ];
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8').on('data', (s: string) => { this.dnsmasqLog += s; });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { this.dnsmasqLog += s; });
    this.dnsmasq = child;
    // ready when it says it serves the range (or fails)
    const deadline = Date.now() + 15_000;
    while (!/DHCP, IP range/.test(this.dnsmasqLog.split('started').at(-1) ?? '')) {
      if (child.exitCode !== null) throw new Error(`dnsmasq exited (${child.exitCode}):\n${this.dnsmasqLog}`);
      if (Date.now() > deadline) throw new Error(`dnsmasq did not start:\n${this.dnsmasqLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stopDnsmasq(): Promise<void> {
    const d = this.dnsmasq;
    this.dnsmasq = undefined;
    if (d === undefined || d.exitCode !== null || d.signalCode !== null) return;
    const exited = new Promise((r) => d.once('exit', r));
    d.kill('SIGTERM');
    await exited;
  }

  /** Runs `booty <args>` inside the client namespace. */
  booty(args: string[]): NetnsProcess {
    const child = spawn('ip', ['netns', 'exec', this.clientNs, path.join(root, 'bin', 'booty'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'], cwd: root,
    });
    const p = new NetnsProcess(child);
    this.#procs.push(p);
    return p;
  }

  /** `ip -4 -j addr show dev <clientIf>` in the client namespace, as "a.b.c.d/len" strings. */
  clientAddresses(): string[] {
    const j = JSON.parse(ip('-n', this.clientNs, '-4', '-j', 'addr', 'show', 'dev', this.clientIf)) as
      { addr_info: { local: string; prefixlen: number }[] }[];
    return j.flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
  }

  clientRoutes(): { dst: string; gateway?: string; dev: string; protocol?: string; scope?: string }[] {
    return JSON.parse(ip('-n', this.clientNs, '-4', '-j', 'route', 'show'));
  }

  async close(): Promise<void> {
    for (const p of this.#procs) {
      try { await p.stop(); } catch { /* already gone */ }
    }
    await this.stopDnsmasq();
    this.#removeNamespaces();
  }
}
