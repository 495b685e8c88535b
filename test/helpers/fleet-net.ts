// A fleet in network namespaces (root): a `core` namespace (PostgreSQL, booty server replicas,
// haproxy), a management link from the host into the core (the test's own API calls: never
// counted), and R racks, each a bridge namespace joined to the core by one uplink and holding
// member namespaces (a seed, agents). `tc tbf` limits each direction of every uplink and member
// link. The core does not forward between racks (ip_forward stays 0 in a new namespace): a rack
// reaches only the core's address on its own uplink. Names carry an index N taken atomically
// (`ip netns add` fails when the name exists); close() kills what was started in them and deletes
// every namespace (and so their veths and taps) and any root-namespace leftover. A rack may also
// hold QEMU guests: each a namespace with a tap, on the rack's bridge like a member (addGuestPort).
//
//   host 10.96.N.2 ==mgmt== core 10.96.N.1 (pg 127.0.0.1, replicas 127.0.0.1:300x, haproxy :3000)
//                           core 10.(96+r).N.1 ==uplink r, tbf== [rack r: br0] == member k 10.(96+r).N.(10+k), tbf
//                                                              [rack r: br0] == guest k: br0 + tap vm0 (QEMU), tbf; no address
import type { ChildProcess } from 'node:child_process';
import { addBridgedNamespace, addBridgedTap, ip, NamespaceProcesses, tbf, tryIp } from './netns-links.ts';

export interface FleetMember { name: string; ns: string; ip: string; rack: number }
export interface FleetRack { index: number; ns: string; members: FleetMember[]; /** the core's address on this rack's uplink */ coreIp: string }

export class FleetNet {
  readonly n: number;
  readonly core: string;
  readonly mgmtCoreIp: string;
  readonly racks: FleetRack[] = [];
  private readonly processes = new NamespaceProcesses();
  private closed = false;
  private readonly guestPorts: { rack: number; ns: string; tap: string }[] = [];

  constructor(n: number) {
    this.n = n;
    this.core = `btf${n}c`;
    this.mgmtCoreIp = `10.96.${n}.1`;
  }

  /** A rack bridge joined to the core by an uplink limited to `uplinkMbit` both ways. */
  addRack(uplinkMbit: number): FleetRack {
    const r = this.racks.length + 1;
    const rack: FleetRack = { index: r, ns: `btf${this.n}r${r}`, members: [], coreIp: `10.${96 + r}.${this.n}.1` };
    ip('netns', 'add', rack.ns);
    this.racks.push(rack);
    ip('-n', rack.ns, 'link', 'set', 'lo', 'up');
    ip('-n', rack.ns, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', rack.ns, 'link', 'set', 'br0', 'up');
    const a = `btf${this.n}u${r}a`;
    const b = `btf${this.n}u${r}b`;
    ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    ip('link', 'set', a, 'netns', this.core, 'name', `up${r}`);
    ip('link', 'set', b, 'netns', rack.ns);
    ip('-n', this.core, 'addr', 'add', `${rack.coreIp}/24`, 'dev', `up${r}`);
    ip('-n', this.core, 'link', 'set', `up${r}`, 'up');
    ip('-n', rack.ns, 'link', 'set', b, 'master', 'br0', 'up');
    tbf(this.core, `up${r}`, uplinkMbit);
    tbf(rack.ns, b, uplinkMbit);
    return rack;
  }

  /** A member namespace on rack r's bridge, its link limited to `mbit` both ways. */
  addMember(rack: FleetRack, name: string, mbit: number): FleetMember {
    const k = rack.members.length + 1;
    const m: FleetMember = { name, ns: `btf${this.n}r${rack.index}m${k}`, ip: `10.${96 + rack.index}.${this.n}.${10 + k}`, rack: rack.index };
    rack.members.push(m);
    addBridgedNamespace({ ns: m.ns, bridgeNs: rack.ns, vethA: `btf${this.n}r${rack.index}x${k}`, vethB: `btf${this.n}r${rack.index}y${k}`, address: m.ip, mbit });
    return m;
  }

  /**
   * A QEMU guest's place on rack r's bridge: namespace `ns` (QEMU runs there) with the tap `tap`,
   * joined to the bridge by a link limited to `mbit` both ways like a member's.
   */
  addGuestPort(rack: FleetRack, mbit: number): { ns: string; tap: string } {
    const k = this.guestPorts.filter((g) => g.rack === rack.index).length + 1;
    const port = { rack: rack.index, ns: `btf${this.n}r${rack.index}g${k}`, tap: 'vm0' };
    this.guestPorts.push(port);
    addBridgedTap({ ns: port.ns, bridgeNs: rack.ns, vethA: `btf${this.n}r${rack.index}v${k}`, vethB: `btf${this.n}r${rack.index}w${k}`, tap: port.tap, mbit });
    return { ns: port.ns, tap: port.tap };
  }

  /** Runs `cmd` in namespace `ns`; killed at close() if still running. */
  spawnIn(ns: string, cmd: string, args: string[]): ChildProcess {
    return this.processes.spawnIn(ns, cmd, args);
  }

  /** Bytes the core has sent into rack r so far (its uplink's transmit counter). */
  originTxBytes(r: number): number {
    const j = JSON.parse(ip('-n', this.core, '-s', '-j', 'link', 'show', 'dev', `up${r}`)) as { stats64: { tx: { bytes: number } } }[];
    return j[0].stats64.tx.bytes;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.processes.killAll(300);
    for (const g of this.guestPorts) tryIp('netns', 'del', g.ns);
    for (const rack of this.racks) {
      for (const m of rack.members) tryIp('netns', 'del', m.ns);
      tryIp('netns', 'del', rack.ns);
    }
    tryIp('netns', 'del', this.core);
    tryIp('link', 'del', `btf${this.n}h`);
    for (const rack of this.racks) {
      tryIp('link', 'del', `btf${this.n}u${rack.index}a`);
      tryIp('link', 'del', `btf${this.n}u${rack.index}b`);
      for (let k = 0; k <= rack.members.length; k++) { tryIp('link', 'del', `btf${this.n}r${rack.index}x${k}`); tryIp('link', 'del', `btf${this.n}r${rack.index}y${k}`); }
      for (let k = 0; k <= this.guestPorts.length; k++) { tryIp('link', 'del', `btf${this.n}r${rack.index}v${k}`); tryIp('link', 'del', `btf${this.n}r${rack.index}w${k}`); }
    }
  }
}

/** The core namespace and its management link from the host (10.96.N.2 -> 10.96.N.1). */
export function createFleetNet(): FleetNet {
  const start = 100 + (process.pid % 150);
  for (let i = 0; i < 150; i++) {
    const n = 100 + ((start - 100 + i) % 150);
    if (!tryIp('netns', 'add', `btf${n}c`)) continue;
    const net = new FleetNet(n);
    try {
      ip('-n', net.core, 'link', 'set', 'lo', 'up');
      const h = `btf${n}h`;
      ip('link', 'add', h, 'type', 'veth', 'peer', 'name', `btf${n}g`);
      ip('link', 'set', `btf${n}g`, 'netns', net.core, 'name', 'mgmt');
      ip('addr', 'add', `10.96.${n}.2/24`, 'dev', h);
      ip('link', 'set', h, 'up');
      ip('-n', net.core, 'addr', 'add', `${net.mgmtCoreIp}/24`, 'dev', 'mgmt');
      ip('-n', net.core, 'link', 'set', 'mgmt', 'up');
    } catch (e) {
      void net.close();
      throw e;
    }
    return net;
  }
  throw new Error('createFleetNet: no free namespace btf100c..btf249c');
}
