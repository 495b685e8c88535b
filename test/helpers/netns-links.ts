// The pieces rack-net.ts and fleet-net.ts build their namespaces from: `ip` calls, a tbf limit,
// a member namespace joined to a bridge by a veth pair, and processes started in namespaces that
// are killed when the lab closes.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

export function tryIp(...args: string[]): boolean {
  try { ip(...args); return true; } catch { return false; }
}

/** Limits what `dev` in namespace `ns` sends to `rateMbit`. */
export function tbf(ns: string, dev: string, rateMbit: number): void {
  // burst: at least one timer tick's worth at the rate, and a few full frames
  const burst = Math.max(32 * 1024, Math.ceil(rateMbit * 1e6 / 8 / 250));
  execFileSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', `${rateMbit}mbit`, 'burst', String(burst), 'latency', '100ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Creates namespace `ns` with `eth0` at `address`/24, joined to `br0` in `bridgeNs` through the
 * veth pair `vethA` (becomes eth0) / `vethB` (the bridge port), `mbit` each way.
 */
export function addBridgedNamespace(o: { ns: string; bridgeNs: string; vethA: string; vethB: string; address: string; mbit: number }): void {
  ip('netns', 'add', o.ns);
  ip('link', 'add', o.vethA, 'type', 'veth', 'peer', 'name', o.vethB);
  ip('link', 'set', o.vethA, 'netns', o.ns, 'name', 'eth0');
  ip('link', 'set', o.vethB, 'netns', o.bridgeNs);
  ip('-n', o.ns, 'link', 'set', 'lo', 'up');
  ip('-n', o.ns, 'addr', 'add', `${o.address}/24`, 'dev', 'eth0');
  ip('-n', o.ns, 'link', 'set', 'eth0', 'up');
  ip('-n', o.bridgeNs, 'link', 'set', o.vethB, 'master', 'br0', 'up');
  tbf(o.ns, 'eth0', o.mbit);
  tbf(o.bridgeNs, o.vethB, o.mbit);
}

/**
 * Creates namespace `ns` holding a bridge `br0` with the tap `tap` on it, for a QEMU guest run
 * inside `ns` (QEMU finds the tap by name in its own namespace), joined to `br0` in `bridgeNs`
 * through the veth pair `vethA` (becomes `uplink` in `ns`) / `vethB` (the bridge port), `mbit` each
 * way: the guest's cable, limited like a member's link (tbf on both veth ends: a tap has no far
 * end in the host to put the second one on, and this kernel has no ingress policer). No address
 * in `ns`: the guest is the only host on that cable.
 */
export function addBridgedTap(o: { ns: string; bridgeNs: string; vethA: string; vethB: string; tap: string; mbit: number }): void {
  ip('netns', 'add', o.ns);
  ip('-n', o.ns, 'link', 'set', 'lo', 'up');
  ip('-n', o.ns, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', o.ns, 'tuntap', 'add', 'dev', o.tap, 'mode', 'tap');
  ip('-n', o.ns, 'link', 'set', o.tap, 'master', 'br0', 'up');
  ip('link', 'add', o.vethA, 'type', 'veth', 'peer', 'name', o.vethB);
  ip('link', 'set', o.vethA, 'netns', o.ns, 'name', 'uplink');
  ip('link', 'set', o.vethB, 'netns', o.bridgeNs);
  ip('-n', o.ns, 'link', 'set', 'uplink', 'master', 'br0', 'up');
  ip('-n', o.ns, 'link', 'set', 'br0', 'up');
  ip('-n', o.bridgeNs, 'link', 'set', o.vethB, 'master', 'br0', 'up');
  tbf(o.ns, 'uplink', o.mbit);
  tbf(o.bridgeNs, o.vethB, o.mbit);
}

/** Processes started in namespaces, SIGKILLed by killAll() if still running. */
export class NamespaceProcesses {
  private readonly children = new Set<ChildProcess>();

  /** Runs `cmd` in namespace `ns`. */
  spawnIn(ns: string, cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Kills what still runs, then gives the kernel `settleMs` to reap it before namespaces go. */
  async killAll(settleMs: number): Promise<void> {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await new Promise((ok) => setTimeout(ok, settleMs));
  }
}
