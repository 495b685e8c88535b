// A rack in network namespaces (root): a `core` namespace (the booty server: origin, metainfo,
// tracker) linked to a rack bridge by one uplink, and members (a seed, agents) each in a
// namespace of its own on that bridge. `tc tbf` limits each direction of the uplink and of every
// member's link. Names carry an index N picked atomically (`ip netns add` fails when the name
// exists), so concurrent test files never share one; close() deletes every namespace (which
// deletes their veths) and any root-namespace leftover.
//
//   core (10.77.N.1) ==uplink, tbf== [rack: br0] == member k (10.77.N.(10+k)), tbf both ways
import type { ChildProcess } from 'node:child_process';
import { addBridgedNamespace, ip, NamespaceProcesses, tbf, tryIp } from './netns-links.ts';

export interface RackMember { name: string; ns: string; ip: string }

export class RackNet {
  readonly n: number;
  readonly core: string;
  readonly rack: string;
  readonly coreIp: string;
  readonly members: RackMember[] = [];
  private readonly processes = new NamespaceProcesses();
  private closed = false;

  constructor(n: number) {
    this.n = n;
    this.core = `btp${n}c`;
    this.rack = `btp${n}r`;
    this.coreIp = `10.77.${n}.1`;
  }

  /** A member namespace on the bridge, its link limited to `mbit` both ways. */
  addMember(name: string, mbit: number): RackMember {
    const k = this.members.length + 1;
    const m: RackMember = { name, ns: `btp${this.n}m${k}`, ip: `10.77.${this.n}.${10 + k}` };
    this.members.push(m);
    addBridgedNamespace({ ns: m.ns, bridgeNs: this.rack, vethA: `btp${this.n}x${k}`, vethB: `btp${this.n}y${k}`, address: m.ip, mbit });
    return m;
  }

  /** Runs `cmd` in namespace `ns`; killed at close() if still running. */
  spawnIn(ns: string, cmd: string, args: string[]): ChildProcess {
    return this.processes.spawnIn(ns, cmd, args);
  }

  /** Bytes the core has sent into the rack so far (its uplink's transmit counter). */
  originTxBytes(): number {
    const j = JSON.parse(ip('-n', this.core, '-s', '-j', 'link', 'show', 'dev', 'eth0')) as { stats64: { tx: { bytes: number } } }[];
    return j[0].stats64.tx.bytes;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.processes.killAll(200);
    for (const m of this.members) tryIp('netns', 'del', m.ns);
    tryIp('netns', 'del', this.rack);
    tryIp('netns', 'del', this.core);
    for (let k = 0; k <= this.members.length; k++) { tryIp('link', 'del', `btp${this.n}x${k}`); tryIp('link', 'del', `btp${this.n}y${k}`); }
  }
}

/** The core and the rack bridge, the uplink limited to `uplinkMbit` both ways. */
export function createRackNet(uplinkMbit: number): RackNet {
  const start = 100 + (process.pid % 150);
  for (let i = 0; i < 150; i++) {
    const n = 100 + ((start - 100 + i) % 150);
    if (!tryIp('netns', 'add', `btp${n}c`)) continue;
    const net = new RackNet(n);
    try {
      ip('netns', 'add', net.rack);
      ip('-n', net.core, 'link', 'set', 'lo', 'up');
      ip('-n', net.rack, 'link', 'set', 'lo', 'up');
      ip('-n', net.rack, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', net.rack, 'link', 'set', 'br0', 'up');
      const a = `btp${n}x0`;
      const b = `btp${n}y0`;
      ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b);
      ip('link', 'set', a, 'netns', net.core, 'name', 'eth0');
      ip('link', 'set', b, 'netns', net.rack);
      ip('-n', net.core, 'addr', 'add', `${net.coreIp}/24`, 'dev', 'eth0');
      ip('-n', net.core, 'link', 'set', 'eth0', 'up');
      ip('-n', net.rack, 'link', 'set', b, 'master', 'br0', 'up');
      tbf(net.core, 'eth0', uplinkMbit);
      tbf(net.rack, b, uplinkMbit);
    } catch (e) {
      void net.close();
      throw e;
    }
    return net;
  }
  throw new Error('createRackNet: no free namespace btp100c..btp249c');
}
