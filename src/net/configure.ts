// The one call the agent makes to get on the network: choose the NIC (BOOTIF, booty.iface/ip=
// device, else the first with carrier), set it up, get an address (DHCP or static ip=), install
// the routes and /etc/resolv.conf, and keep the DHCP lease renewed in the background while the
// image transfers. Every step is logged; every failure is a BootyError naming the NIC and what
// was tried.
import type { Logger } from '../util/log.ts';
import { BootyError, isBootyError } from '../util/errors.ts';
import { openNetlinkRouteSocket } from '../sys/socket.ts';
import type { NetlinkSocket } from '../sys/socket.ts';
import { Rtnl, NetlinkError } from './netlink/rtnl.ts';
import type { RouteSpec } from './netlink/codec.ts';
import { RTPROT } from './netlink/codec.ts';
import { DhcpClient, describeLease } from './dhcp/client.ts';
import type { DhcpTransport, Lease } from './dhcp/client.ts';
import { openUdpTransport } from './dhcp/udp-transport.ts';
import { networkOf, prefixToMask, sameSubnet } from './dhcp/codec.ts';
import type { Clock } from './dhcp/clock.ts';
import { realClock } from './dhcp/clock.ts';
import type { IpParam } from './ip-param.ts';
import { candidateInterfaces, describeInterface, listInterfaces, readInterface } from './interfaces.ts';
import type { NetInterface } from './interfaces.ts';
import { writeResolvConf } from './resolv.ts';

export type { Lease } from './dhcp/client.ts';

export interface NetworkOptions {
  iface?: string;
  /** MAC address (BOOTIF, already parsed with parseBootif) */
  bootif?: string;
  ip?: IpParam;
  log: Logger;
  /** how long to wait for the NIC to appear and get carrier (default 30 s) */
  linkTimeoutMs?: number;
  /** how long to wait for a DHCP lease (default 90 s) */
  dhcpTimeoutMs?: number;
  sysfsRoot?: string;
  /** where to write DNS servers (default /etc/resolv.conf); false: do not write */
  resolvConf?: string | false;
  /** host name sent to the DHCP server (option 12) */
  hostname?: string;
  /** DHCP tuning (see DhcpClientOptions) */
  dhcp?: { initialRetransmitMs?: number; maxRetransmitMs?: number; renewRetryMinMs?: number };
  /** called once, right after the first DHCP DISCOVER went out: the agent does work ahead while
   *  the server answers (a server that probes the address first takes seconds) */
  onDhcpWaiting?: () => void;
  /** called on every lease change after the first: renewed, lost, bound again after a loss */
  onLeaseEvent?: (event: 'renewed' | 'lost' | 'bound', lease: Lease) => void;
  /** test seams: the real ones are the koffi sockets and the wall clock */
  openNetlink?: () => NetlinkSocket;
  openTransport?: (iface: string) => Promise<DhcpTransport>;
  clock?: Clock;
}

export interface NetworkHandle {
  iface: string;
  mac: string;
  address: string;
  prefix: number;
  gateway?: string;
  dns: string[];
  hostname?: string;
  lease?: Lease;
  /**
   * Stops renewing, releases the DHCP lease and removes the address booty set (routes go with
   * it). Pass { release: false, deconfigure: false } to leave the interface as it is.
   */
  stop(opts?: { release?: boolean; deconfigure?: boolean }): Promise<void>;
}

interface Applied { index: number; address: string; prefix: number; routes: RouteSpec[] }

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function bringUpNetwork(opts: NetworkOptions): Promise<NetworkHandle> {
  const log = opts.log;
  const ip = opts.ip;
  if (ip?.mode === 'off') {
    throw new BootyError({
      stage: 'network', code: 'network-off',
      message: 'ip=off/none on the command line turns the network off, but booty needs it to reach the server',
      hint: 'remove ip=off or give ip=dhcp / a static ip=',
    });
  }
  let rtnl: Rtnl;
  try {
    rtnl = new Rtnl((opts.openNetlink ?? openNetlinkRouteSocket)());
  } catch (e) {
    throw new BootyError({ stage: 'network', code: 'netlink', message: `cannot open rtnetlink: ${errMessage(e)}`, cause: e });
  }
  try {
    const nic = await chooseInterface(rtnl, opts);
    return ip?.mode === 'static' ? configureStatic(rtnl, nic, ip, opts) : await configureDhcp(rtnl, nic, opts);
  } catch (e) {
    rtnl.close();
    if (isBootyError(e)) throw e;
    throw new BootyError({ stage: 'network', code: 'network-setup', message: errMessage(e), cause: e });
  }
}

// ---------- choosing the NIC ----------

function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => { clock.setTimer(resolve, ms); });
}

function setUp(rtnl: Rtnl, nic: NetInterface, up: boolean): void {
  try {
    rtnl.setLinkUp(nic.ifindex, up);
  } catch (e) {
    throw new BootyError({ stage: 'network', code: 'link-up', message: `cannot set ${nic.name} (${nic.mac}) ${up ? 'up' : 'down'}: ${errMessage(e)}`, cause: e });
  }
}

async function chooseInterface(rtnl: Rtnl, opts: NetworkOptions): Promise<NetInterface> {
  const clock = opts.clock ?? realClock;
  const sysfs = opts.sysfsRoot ?? '/sys';
  const log = opts.log;
  const timeout = opts.linkTimeoutMs ?? 30_000;
  const deadline = clock.now() + timeout;
  const wantName = opts.iface ?? (opts.ip?.mode !== 'off' ? opts.ip?.iface : undefined);
  const wantMac = (opts.bootif ?? (opts.ip?.mode !== 'off' ? opts.ip?.mac : undefined))?.toLowerCase();
  const raised = new Map<string, NetInterface>();
  const what = wantMac !== undefined ? `the NIC with MAC ${wantMac} (BOOTIF)` : wantName !== undefined ? `NIC ${wantName}` : 'a NIC with carrier';
  log.info(`network: looking for ${what}`);

  for (;;) {
    const all = listInterfaces(sysfs);
    let pool: NetInterface[];
    if (wantMac !== undefined) pool = all.filter((i) => i.mac === wantMac);
    else if (wantName !== undefined) pool = all.filter((i) => i.name === wantName);
    else pool = candidateInterfaces(all);

    // Carrier is only reported for links that are up: raise every candidate once.
    for (const nic of pool) {
      if (!raised.has(nic.name)) {
        log.info(`network: setting ${nic.name} (${nic.mac}) up`);
        setUp(rtnl, nic, true);
        raised.set(nic.name, nic);
      }
    }
    const fresh = pool.map((n) => readInterface(sysfs, n.name) ?? n);
    const chosen = fresh.find((n) => n.carrier === true);
    if (chosen !== undefined) {
      for (const other of raised.values()) {
        if (other.name !== chosen.name) {
          log.info(`network: setting unused ${other.name} down again`);
          try { setUp(rtnl, other, false); } catch (e) { log.warn(errMessage(e)); }
        }
      }
      log.info(`network: using ${describeInterface(chosen)}`);
      return chosen;
    }
    if (clock.now() >= deadline) {
      // A NIC named explicitly gets its chance even without carrier (some drivers never report it).
      if ((wantName !== undefined || wantMac !== undefined) && fresh.length === 1) {
        log.warn(`network: ${fresh[0].name} reports no carrier after ${Math.round(timeout / 1000)} s; trying it anyway`);
        return fresh[0];
      }
      const seen = all.length === 0 ? 'no network interfaces at all (driver not loaded?)' : all.map(describeInterface).join('; ');
      throw new BootyError({
        stage: 'network', code: 'no-link',
        message: pool.length === 0
          ? `${what} not found after ${Math.round(timeout / 1000)} s; interfaces: ${seen}`
          : `no carrier on ${pool.map((n) => n.name).join(', ')} after ${Math.round(timeout / 1000)} s; interfaces: ${seen}`,
        hint: 'check the cable and switch port, or name the NIC with BOOTIF= / booty.iface=',
      });
    }
    await sleep(clock, 250);
  }
}

// ---------- applying addresses and routes ----------

function routesFor(index: number, address: string, prefix: number, gateway: string | undefined,
  classless: { destination: string; prefix: number; gateway: string }[] | undefined, protocol: number): RouteSpec[] {
  const routes: RouteSpec[] = [];
  const onLink = (gw: string) => {
    // A gateway outside our subnet needs a host route first, or the kernel refuses it (ENETUNREACH).
    if (!sameSubnet(gw, address, prefix) && !routes.some((r) => r.prefix === 32 && r.destination === gw)) {
      routes.push({ destination: gw, prefix: 32, oif: index, source: address, protocol });
    }
  };
  if (classless !== undefined) {
    for (const r of classless) {
      if (r.gateway === '0.0.0.0') {
        routes.push({ destination: r.destination, prefix: r.prefix, oif: index, source: address, protocol });
      } else {
        onLink(r.gateway);
        routes.push({ destination: r.destination, prefix: r.prefix, gateway: r.gateway, oif: index, protocol });
      }
    }
  } else if (gateway !== undefined) {
    onLink(gateway);
    routes.push({ destination: '0.0.0.0', prefix: 0, gateway, oif: index, protocol });
  }
  return routes;
}

function apply(rtnl: Rtnl, nic: NetInterface, log: Logger, p: {
  address: string; prefix: number; broadcast?: string; routes: RouteSpec[]; mtu?: number;
}): Applied {
  const step = (what: string, f: () => void) => {
    try {
      f();
    } catch (e) {
      throw new BootyError({
        stage: 'network', code: 'netlink',
        message: `${nic.name}: cannot ${what}: ${e instanceof NetlinkError ? e.code : errMessage(e)}`, cause: e,
      });
    }
  };
  if (p.mtu !== undefined && p.mtu >= 576 && p.mtu <= 9216) {
    log.info(`network: ${nic.name} mtu ${p.mtu}`);
    step(`set MTU ${p.mtu}`, () => rtnl.setLinkUp(nic.ifindex, true, p.mtu));
  }
  const broadcast = p.broadcast ?? broadcastOf(p.address, p.prefix);
  log.info(`network: ${nic.name} address ${p.address}/${p.prefix}`);
  step(`add address ${p.address}/${p.prefix}`, () => rtnl.addAddress({ index: nic.ifindex, address: p.address, prefix: p.prefix, broadcast }));
  for (const r of p.routes) {
    const dst = r.prefix === 0 ? 'default' : `${r.destination}/${r.prefix}`;
    log.info(`network: route ${dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${nic.name}`);
    step(`add route ${dst}${r.gateway ? ` via ${r.gateway}` : ''}`, () => rtnl.addRoute(r));
  }
  return { index: nic.ifindex, address: p.address, prefix: p.prefix, routes: p.routes };
}

function broadcastOf(address: string, prefix: number): string | undefined {
  if (prefix >= 31) return undefined;
  const net = Buffer.from(networkOf(address, prefix).split('.').map(Number));
  const hostBits = (~Buffer.from(prefixToMask(prefix).split('.').map(Number)).readUInt32BE(0)) >>> 0;
  const b = Buffer.alloc(4);
  b.writeUInt32BE((net.readUInt32BE(0) | hostBits) >>> 0);
  return [...b].join('.');
}

function unapply(rtnl: Rtnl, nic: NetInterface, log: Logger, a: Applied): void {
  // Routes through the address disappear with it; the kernel does that part.
  try {
    rtnl.delAddress({ index: a.index, address: a.address, prefix: a.prefix });
    log.info(`network: removed ${a.address}/${a.prefix} from ${nic.name}`);
  } catch (e) {
    log.warn(`network: could not remove ${a.address}/${a.prefix} from ${nic.name}: ${errMessage(e)}`);
  }
}

function writeDns(opts: NetworkOptions, dns: string[], domain: string | undefined): void {
  if (opts.resolvConf === false || dns.length === 0) return;
  const file = opts.resolvConf ?? '/etc/resolv.conf';
  try {
    writeResolvConf(file, { nameservers: dns, domain });
    opts.log.info(`network: wrote ${file} (nameserver ${dns.join(', ')})`);
  } catch (e) {
    opts.log.warn(`network: could not write ${file}: ${errMessage(e)}`);
  }
}

// ---------- static ----------

function configureStatic(rtnl: Rtnl, nic: NetInterface, ip: Extract<IpParam, { mode: 'static' }>, opts: NetworkOptions): NetworkHandle {
  opts.log.info(`network: static configuration from ip= on ${nic.name}`);
  const routes = routesFor(nic.ifindex, ip.address, ip.prefix, ip.gateway, undefined, RTPROT.STATIC);
  let applied: Applied | undefined = apply(rtnl, nic, opts.log, { address: ip.address, prefix: ip.prefix, routes, mtu: ip.mtu });
  writeDns(opts, ip.dns, undefined);
  return {
    iface: nic.name, mac: nic.mac, address: ip.address, prefix: ip.prefix, gateway: ip.gateway,
    dns: ip.dns, hostname: ip.hostname,
    async stop(o = {}) {
      if (applied !== undefined && (o.deconfigure ?? true)) unapply(rtnl, nic, opts.log, applied);
      applied = undefined;
      rtnl.close();
    },
  };
}

// ---------- DHCP ----------

async function configureDhcp(rtnl: Rtnl, nic: NetInterface, opts: NetworkOptions): Promise<NetworkHandle> {
  const log = opts.log;
  let transport: DhcpTransport;
  try {
    transport = await (opts.openTransport ?? openUdpTransport)(nic.name);
  } catch (e) {
    throw new BootyError({ stage: 'dhcp', code: 'dhcp-socket', message: `cannot open the DHCP socket on ${nic.name}: ${errMessage(e)}`, cause: e });
  }
  const hostname = opts.hostname ?? (opts.ip?.mode === 'dhcp' ? opts.ip.hostname : undefined);
  const client = new DhcpClient({
    transport, iface: nic.name, mac: nic.mac, log, hostname, clock: opts.clock, ...opts.dhcp,
  });
  const waiting = opts.onDhcpWaiting;
  if (waiting !== undefined) {
    // 'selecting' is set just before the DISCOVER is handed to the socket: the callback runs after
    const onState = (s: string) => { if (s === 'selecting') { client.off('state', onState); setImmediate(waiting); } };
    client.on('state', onState);
  }
  let lease: Lease;
  try {
    lease = await client.start(opts.dhcpTimeoutMs ?? 90_000);
  } catch (e) {
    await client.stop({ release: false });
    if (isBootyError(e) && e.code === 'dhcp-timeout' && readInterface(opts.sysfsRoot ?? '/sys', nic.name)?.carrier === false) {
      throw new BootyError({ stage: 'dhcp', code: e.code, message: `${e.message}; ${nic.name} has no carrier`, hint: e.hint, cause: e });
    }
    throw e;
  }

  const toApply = (l: Lease) => ({
    address: l.address, prefix: l.prefix, broadcast: l.broadcast, mtu: l.mtu,
    routes: routesFor(nic.ifindex, l.address, l.prefix, l.gateway, l.classlessRoutes, RTPROT.DHCP),
  });
  let applied: Applied | undefined;
  try {
    applied = apply(rtnl, nic, log, toApply(lease));
  } catch (e) {
    await client.stop({ release: true });
    throw e;
  }
  writeDns(opts, lease.dns, lease.domainName);

  const handle: NetworkHandle = {
    iface: nic.name, mac: nic.mac, address: lease.address, prefix: lease.prefix, gateway: lease.gateway,
    dns: lease.dns, hostname: lease.hostname ?? hostname, lease,
    async stop(o = {}) {
      await client.stop({ release: o.release ?? true });
      if (applied !== undefined && (o.deconfigure ?? true)) unapply(rtnl, nic, log, applied);
      applied = undefined;
      rtnl.close();
    },
  };

  // Keep the interface in step with the lease while the agent works.
  const update = (l: Lease, why: string) => {
    const same = applied !== undefined && applied.address === l.address && applied.prefix === l.prefix &&
      JSON.stringify(applied.routes) === JSON.stringify(toApply(l).routes);
    handle.lease = l;
    if (same) return;
    log.info(`network: ${why}: reconfiguring ${nic.name} for ${describeLease(l)}`);
    try {
      if (applied !== undefined && applied.address !== l.address) unapply(rtnl, nic, log, applied);
      applied = apply(rtnl, nic, log, toApply(l));
      Object.assign(handle, { address: l.address, prefix: l.prefix, gateway: l.gateway, dns: l.dns });
      writeDns(opts, l.dns, l.domainName);
    } catch (e) {
      log.error(`network: ${errMessage(e)}`);
    }
  };
  const notify = (event: 'renewed' | 'lost' | 'bound', l: Lease) => {
    try { opts.onLeaseEvent?.(event, l); } catch (e) { log.warn(`network: lease listener failed: ${errMessage(e)}`); }
  };
  client.on('renewed', (l) => { update(l, 'lease renewed with changes'); notify('renewed', l); });
  client.on('bound', (l) => { update(l, 'new lease'); notify('bound', l); });
  client.on('lost', (l, why) => {
    // RFC 2131: an expired address must not be used any more.
    log.warn(`network: lease ${l.address} on ${nic.name} lost (${why}); removing the address until a new lease`);
    if (applied !== undefined) unapply(rtnl, nic, log, applied);
    applied = undefined;
    handle.lease = undefined;
    notify('lost', l);
  });
  return handle;
}
