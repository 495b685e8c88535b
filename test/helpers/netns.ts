// A network for QEMU end-to-end tests (root): a namespace holding a bridge and a tap for the VM,
// linked by a veth pair to the host, whose end has 10.55.N.1/24. Real dnsmasq on that host end
// hands the VM a DHCP lease; a `booty server` listening on 10.55.N.1 is reachable from the VM.
// QEMU must run inside the namespace (it opens the tap by name): pass `net.ns` as nic.netns to
// startVm. N is picked so concurrent test files never share a namespace or subnet.
//
//   VM eth0 -- tap0 --[br0]-- vethNs ====== btyhN (host, 10.55.N.1, dnsmasq, booty server)
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AfterHook } from './qemu.ts';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
function tryIp(...args: string[]): boolean {
  try { ip(...args); return true; } catch { return false; }
}

export interface Dnsmasq {
  /** everything dnsmasq logged (with --log-dhcp: every DISCOVER/OFFER/REQUEST/ACK) */
  readonly log: () => string;
  stop(): Promise<void>;
}

export class TestNet {
  readonly index: number;
  readonly ns: string;
  readonly tap = 'tap0';
  readonly bridge = 'br0';
  readonly hostIf: string;
  /** the host side address: where dnsmasq and the test's server listen */
  readonly hostIp: string;
  readonly prefix: string;
  private dnsmasqs: Dnsmasq[] = [];
  private closed = false;

  constructor(index: number) {
    this.index = index;
    this.ns = `bootyq${index}`;
    this.hostIf = `btyh${index}`;
    this.prefix = `10.55.${index}`;
    this.hostIp = `${this.prefix}.1`;
  }

  /** A MAC address in the locally administered range, unique per net and n. */
  mac(n = 1): string {
    return `52:54:00:55:${this.index.toString(16).padStart(2, '0')}:${n.toString(16).padStart(2, '0')}`;
  }

  /**
   * Starts dnsmasq on the host end: leases from .10 to .99, the host as router. hosts pins
   * addresses to MACs; noPing answers the first DISCOVER at once (by default dnsmasq first
   * pings the address it means to offer, so a client must retry).
   */
  async startDnsmasq(opts: { hosts?: { mac: string; ip: string }[]; noPing?: boolean } = {}): Promise<Dnsmasq> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'booty-dnsmasq-'));
    const args = [
      '--no-daemon', '--conf-file=/dev/null', '--port=0', '--log-dhcp', '--dhcp-authoritative',
      `--interface=${this.hostIf}`, '--bind-interfaces', '--except-interface=lo',
      `--dhcp-range=${this.prefix}.10,${this.prefix}.99,255.255.255.0,1h`,
      `--dhcp-option=3,${this.hostIp}`,
      `--dhcp-leasefile=${dir}/leases`, `--pid-file=${dir}/pid`, '--user=root', '--group=root',
      ...(opts.noPing ? ['--no-ping'] : []),
      ...(opts.hosts ?? []).map((h) => `--dhcp-host=${h.mac},${h.ip}`),
    ];
    const child: ChildProcess = spawn('dnsmasq', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const onData = (b: Buffer) => { log += b.toString(); if (/DHCP, IP range/.test(log)) resolve(); };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.on('error', reject);
      void exited.then(() => reject(new Error(`dnsmasq exited at start: ${log}`)));
    });
    const d: Dnsmasq = {
      log: () => log,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) { child.kill('SIGTERM'); await exited; }
        rmSync(dir, { recursive: true, force: true });
      },
    };
    this.dnsmasqs.push(d);
    return d;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const d of this.dnsmasqs) await d.stop();
    // Deleting the namespace destroys the tap, the bridge and the veth pair (both ends).
    tryIp('netns', 'del', this.ns);
    tryIp('link', 'del', this.hostIf);
  }
}

/** Creates a TestNet; with t, it is torn down when the test ends. Needs root. */
export async function createTestNet(t?: AfterHook): Promise<TestNet> {
  // `ip netns add` fails when the name exists: that makes the choice of N atomic across
  // concurrent test processes.
  const start = 100 + (process.pid % 150);
  for (let k = 0; k < 150; k++) {
    const n = 100 + ((start - 100 + k) % 150);
    if (!tryIp('netns', 'add', `bootyq${n}`)) continue;
    const net = new TestNet(n);
    t?.after(() => net.close());
    try {
      tryIp('link', 'del', net.hostIf); // left over by a killed run
      const inNs = (...a: string[]) => ip('-n', net.ns, ...a);
      inNs('link', 'set', 'lo', 'up');
      inNs('link', 'add', net.bridge, 'type', 'bridge');
      inNs('link', 'set', net.bridge, 'up');
      inNs('tuntap', 'add', 'dev', net.tap, 'mode', 'tap');
      inNs('link', 'set', net.tap, 'master', net.bridge, 'up');
      ip('link', 'add', net.hostIf, 'type', 'veth', 'peer', 'name', 'veth-ns', 'netns', net.ns);
      inNs('link', 'set', 'veth-ns', 'master', net.bridge, 'up');
      ip('addr', 'add', `${net.hostIp}/24`, 'dev', net.hostIf);
      ip('link', 'set', net.hostIf, 'up');
    } catch (e) {
      await net.close();
      throw e;
    }
    return net;
  }
  throw new Error('createTestNet: no free namespace bootyq100..bootyq249');
}
