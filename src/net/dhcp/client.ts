// The DHCP client state machine (RFC 2131 section 4.4): INIT → SELECTING → REQUESTING → BOUND,
// then RENEWING at T1 (unicast to the server that granted the lease), REBINDING at T2
// (broadcast to any server), and back to INIT when the lease expires or a server says NAK.
//
// It knows nothing about sockets or time: packets go through a DhcpTransport and timers through
// a Clock, so unit tests drive it with a fake server and a fake clock, and the same code talks
// to a real dnsmasq through the UDP transport (udp-transport.ts).
import { EventEmitter } from 'node:events';
import type { Logger } from '../../util/log.ts';
import { BootyError } from '../../util/errors.ts';
import type { Clock } from './clock.ts';
import { realClock } from './clock.ts';
import {
  BOOTREPLY, FLAG_BROADCAST, MessageType, Opt, decodeDhcp, encodeDhcp, macToBytes, maskToPrefix,
  messageTypeName, DhcpDecodeError,
} from './codec.ts';
import type { ClasslessRoute, DhcpMessage, DhcpOptions } from './codec.ts';

export interface DhcpTransport {
  /** Sends to 255.255.255.255:67 out of the client's interface. */
  broadcast(packet: Buffer): Promise<void>;
  /** Sends to <address>:67 (RENEWING and RELEASE talk to the server directly). */
  unicast(packet: Buffer, address: string): Promise<void>;
  /** Every datagram that arrives on port 68 of the interface. */
  onPacket(handler: (packet: Buffer) => void): void;
  close(): Promise<void>;
}

export interface Lease {
  address: string;
  prefix: number;
  subnetMask: string;
  /** the first router (option 3), or the default route of option 121 when the server sent it */
  gateway?: string;
  routers: string[];
  classlessRoutes?: ClasslessRoute[];
  dns: string[];
  domainName?: string;
  hostname?: string;
  broadcast?: string;
  mtu?: number;
  serverId: string;
  /** seconds; Infinity for an infinite lease */
  leaseTime: number;
  renewalTime: number;
  rebindingTime: number;
  /** clock time (ms) the REQUEST that earned this lease was sent: T1/T2/expiry count from here */
  obtainedAt: number;
}

export type DhcpState = 'init' | 'selecting' | 'requesting' | 'bound' | 'renewing' | 'rebinding' | 'stopped';

export interface DhcpClientOptions {
  transport: DhcpTransport;
  iface: string;
  mac: string;
  log: Logger;
  /** sent as option 12 so the server can register the name */
  hostname?: string;
  /** option 60; default 'booty' */
  vendorClass?: string;
  clock?: Clock;
  /** uniform [0, 1): jitter of retransmissions (tests pass a seeded one) */
  random?: () => number;
  /** first retransmission interval in SELECTING/REQUESTING (default 2 s; RFC 2131 says 4 s) */
  initialRetransmitMs?: number;
  /** ceiling of the doubling interval (default 32 s; RFC 2131 says 64 s) */
  maxRetransmitMs?: number;
  /**
   * Floor of the retransmission interval in RENEWING/REBINDING (default 10 s). RFC 2131 asks for
   * 60 s on leases of hours; initramfs networks with 2-minute test leases need shorter.
   */
  renewRetryMinMs?: number;
  /**
   * Ask for rapid commit (RFC 4039, option 80 on the DISCOVER; default true): a server that offers
   * it answers with an ACK at once and the REQUEST/ACK exchange is skipped. A server that does not
   * ignores the option and the usual OFFER/REQUEST/ACK follows.
   */
  rapidCommit?: boolean;
}

export interface DhcpClientEvents {
  bound: [Lease];
  renewed: [Lease];
  lost: [Lease, string];
  state: [DhcpState];
}

const PARAMETERS = [
  Opt.SUBNET_MASK, Opt.ROUTER, Opt.DNS, Opt.HOSTNAME, Opt.DOMAIN_NAME, Opt.MTU, Opt.BROADCAST,
  Opt.LEASE_TIME, Opt.SERVER_ID, Opt.T1, Opt.T2, Opt.CLASSLESS_ROUTES,
];
const INFINITE = 0xffffffff;
const DEFAULT_LEASE_S = 3600;

interface Waiter { accept(m: DhcpMessage): boolean; resolve(m: DhcpMessage | undefined): void }

/** Turns an ACK into a Lease (with RFC 2131 defaults for T1/T2 and the classful mask). */
export function leaseFromAck(ack: DhcpMessage, serverIdFallback: string, obtainedAt: number, log?: Logger): Lease {
  const o: DhcpOptions = ack.options;
  const address = ack.yiaddr;
  const subnetMask = o.subnetMask ?? classfulMask(address);
  const prefix = maskToPrefix(subnetMask);
  let leaseTime: number = o.leaseTime ?? DEFAULT_LEASE_S;
  if (o.leaseTime === undefined) log?.warn(`dhcp: ACK carries no lease time; assuming ${DEFAULT_LEASE_S} s`);
  if (leaseTime === INFINITE) leaseTime = Infinity;
  let t1 = o.renewalTime ?? leaseTime * 0.5;
  let t2 = o.rebindingTime ?? leaseTime * 0.875;
  // Times that contradict each other are replaced by the defaults (RFC 2131 4.4.5 order T1<T2<lease).
  if (!(t2 < leaseTime) && leaseTime !== Infinity) t2 = leaseTime * 0.875;
  if (!(t1 < t2)) t1 = Math.min(leaseTime * 0.5, t2 * 0.9);
  const routers = o.routers ?? [];
  const defaultRoute = o.classlessRoutes?.find((r) => r.prefix === 0);
  // RFC 3442: with option 121 present, option 3 is ignored.
  const gateway = o.classlessRoutes !== undefined ? defaultRoute?.gateway : routers[0];
  return {
    address, prefix, subnetMask,
    gateway: gateway === '0.0.0.0' ? undefined : gateway,
    routers,
    classlessRoutes: o.classlessRoutes,
    dns: o.dns ?? [],
    domainName: o.domainName,
    hostname: o.hostname,
    broadcast: o.broadcast,
    mtu: o.mtu,
    serverId: o.serverId ?? serverIdFallback,
    leaseTime, renewalTime: t1, rebindingTime: t2, obtainedAt,
  };
}

function classfulMask(ip: string): string {
  const first = Number(ip.split('.')[0]);
  return first < 128 ? '255.0.0.0' : first < 192 ? '255.255.0.0' : '255.255.255.0';
}

export function describeLease(l: Lease): string {
  const parts = [`${l.address}/${l.prefix}`];
  if (l.gateway) parts.push(`gateway ${l.gateway}`);
  if (l.dns.length) parts.push(`dns ${l.dns.join(',')}`);
  parts.push(`server ${l.serverId}`);
  parts.push(l.leaseTime === Infinity ? 'lease infinite' : `lease ${l.leaseTime}s (T1 ${Math.round(l.renewalTime)}s, T2 ${Math.round(l.rebindingTime)}s)`);
  return parts.join(' ');
}

export class DhcpClient extends EventEmitter<DhcpClientEvents> {
  #o: Required<Pick<DhcpClientOptions, 'initialRetransmitMs' | 'maxRetransmitMs' | 'renewRetryMinMs' | 'vendorClass' | 'rapidCommit'>> & DhcpClientOptions;
  #clock: Clock;
  #random: () => number;
  #chaddr: Buffer;
  #state: DhcpState = 'init';
  #lease: Lease | undefined;
  #waiter: Waiter | undefined;
  #xid = 0;
  #stopped = false;
  #sleeps = new Set<() => void>();
  #background: Promise<void> | undefined;

  constructor(opts: DhcpClientOptions) {
    super();
    // `??` and not a spread: an option passed as undefined must not erase its default
    this.#o = {
      ...opts,
      initialRetransmitMs: opts.initialRetransmitMs ?? 2000,
      maxRetransmitMs: opts.maxRetransmitMs ?? 32_000,
      renewRetryMinMs: opts.renewRetryMinMs ?? 10_000,
      vendorClass: opts.vendorClass ?? 'booty',
      rapidCommit: opts.rapidCommit ?? true,
    };
    this.#clock = opts.clock ?? realClock;
    // Math.random, not node:crypto: the xid only tells this client's exchanges apart from other
    // clients' (everyone on the segment reads it in the broadcast DISCOVER: it is no secret), and
    // loading node:crypto before the first DISCOVER costs tenths of a second under QEMU's TCG.
    this.#random = opts.random ?? Math.random;
    this.#chaddr = macToBytes(opts.mac);
    opts.transport.onPacket((p) => this.#onPacket(p));
  }

  get state(): DhcpState { return this.#state; }
  get lease(): Lease | undefined { return this.#lease; }

  /**
   * Obtains a lease (DISCOVER/OFFER/REQUEST/ACK, restarting on NAK), then keeps it renewed in the
   * background until stop(). Rejects with a BootyError (stage 'dhcp') after timeoutMs.
   */
  async start(timeoutMs: number): Promise<Lease> {
    const lease = await this.#acquire(timeoutMs);
    this.#bind(lease, 'bound');
    this.#background = this.#maintain().catch((e: unknown) => {
      this.#o.log.error(`dhcp: background renewal on ${this.#o.iface} stopped: ${e instanceof Error ? e.message : String(e)}`);
    });
    return lease;
  }

  /** Stops renewing; with release (default) tells the server the address is free again. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    if (this.#stopped) return;
    const lease = this.#lease;
    const held = this.#state === 'bound' || this.#state === 'renewing' || this.#state === 'rebinding';
    this.#stopped = true;
    for (const wake of [...this.#sleeps]) wake();
    this.#waiter?.resolve(undefined);
    if ((opts.release ?? true) && held && lease !== undefined) {
      try {
        await this.#o.transport.unicast(this.#packet(MessageType.RELEASE, this.#newXid(), {
          ciaddr: lease.address, options: { serverId: lease.serverId },
        }), lease.serverId);
        this.#o.log.info(`dhcp: released ${lease.address} to ${lease.serverId}`);
      } catch (e) {
        this.#o.log.warn(`dhcp: RELEASE of ${lease.address} not sent: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    this.#setState('stopped');
    await this.#background;
    await this.#o.transport.close();
  }

  // ---------- acquisition ----------

  async #acquire(timeoutMs: number): Promise<Lease> {
    const clock = this.#clock;
    const started = clock.now();
    const deadline = started + timeoutMs;
    const stats = { discovers: 0, offers: 0, requests: 0, naks: 0 };
    const lastOffer: { server?: string } = {};
    while (!this.#stopped && clock.now() < deadline) {
      this.#setState('selecting');
      const xid = this.#newXid();
      let interval = this.#o.initialRetransmitMs;
      let offer: DhcpMessage | undefined;
      let sent = 0;
      const rapid = this.#o.rapidCommit;
      // a rapid-commit lease counts from the first DISCOVER of this xid (the earliest it can have started)
      const firstDiscoverAt = clock.now();
      while (offer === undefined && !this.#stopped && clock.now() < deadline) {
        stats.discovers++;
        sent++;
        this.#o.log.info(`dhcp: DISCOVER on ${this.#o.iface} (attempt ${stats.discovers}, xid ${hex(xid)}${rapid ? ', rapid commit asked' : ''})`);
        // The waiter is registered before sending: a fast server may answer before send() returns.
        const wait = Math.min(this.#jitter(interval), deadline - clock.now());
        const answer = this.#waitFor(xid, wait, (m) => m.yiaddr !== '0.0.0.0' && m.options.serverId !== undefined &&
          (m.options.messageType === MessageType.OFFER || (rapid && isRapidAck(m))));
        await this.#send('broadcast', this.#packet(MessageType.DISCOVER, xid, { secs: this.#secs(started), options: rapid ? { rapidCommit: true } : {} }));
        offer = await answer;
        // The first DISCOVERs go at the initial interval before it doubles: servers that probe
        // an address before offering it drop the DISCOVERs that come meanwhile (dnsmasq pings
        // for 3 s), so with 2 s doubling the offer waited for the third DISCOVER at ~6 s; at
        // 0, 2, 4 s it comes with the third at ~4 s (README "Network and DHCP").
        if (sent >= flatDiscovers) interval = Math.min(interval * 2, this.#o.maxRetransmitMs);
      }
      if (offer === undefined) break;
      stats.offers++;
      const serverId = offer.options.serverId as string;
      lastOffer.server = serverId;
      if (isRapidAck(offer)) {
        // RFC 4039: the server committed the lease on the DISCOVER; no REQUEST/ACK exchange
        this.#o.log.info(`dhcp: ACK of ${offer.yiaddr} from ${serverId} (rapid commit)`);
        return leaseFromAck(offer, serverId, firstDiscoverAt, this.#o.log);
      }
      this.#o.log.info(`dhcp: OFFER of ${offer.yiaddr} from ${serverId}`);

      this.#setState('requesting');
      interval = this.#o.initialRetransmitMs;
      let reply: DhcpMessage | undefined;
      const requestedAt = clock.now();
      for (let attempt = 1; attempt <= 4 && reply === undefined && !this.#stopped && clock.now() < deadline; attempt++) {
        stats.requests++;
        this.#o.log.info(`dhcp: REQUEST ${offer.yiaddr} from ${serverId} (attempt ${attempt})`);
        const wait = Math.min(this.#jitter(interval), deadline - clock.now());
        const answer = this.#waitFor(xid, wait, (m) =>
          (m.options.messageType === MessageType.ACK || m.options.messageType === MessageType.NAK) &&
          (m.options.serverId === undefined || m.options.serverId === serverId));
        await this.#send('broadcast', this.#packet(MessageType.REQUEST, xid, {
          secs: this.#secs(started), options: { requestedIp: offer.yiaddr, serverId },
        }));
        reply = await answer;
        interval = Math.min(interval * 2, this.#o.maxRetransmitMs);
      }
      if (reply === undefined) {
        this.#o.log.warn(`dhcp: no answer to REQUEST from ${serverId}; starting over`);
        continue;
      }
      if (reply.options.messageType === MessageType.NAK) {
        stats.naks++;
        this.#o.log.warn(`dhcp: NAK from ${serverId}${reply.options.message ? ` (${reply.options.message})` : ''}; starting over`);
        await this.#sleep(Math.min(1000, Math.max(0, deadline - clock.now())));
        continue;
      }
      return leaseFromAck(reply, serverId, requestedAt, this.#o.log);
    }
    if (this.#stopped) throw new BootyError({ stage: 'dhcp', code: 'dhcp-stopped', message: `DHCP on ${this.#o.iface} stopped before a lease was obtained` });
    const seen = stats.offers === 0
      ? `sent ${stats.discovers} DISCOVER, got no OFFER`
      : `got ${stats.offers} OFFER (last from ${lastOffer.server}), sent ${stats.requests} REQUEST, got ${stats.naks} NAK and no ACK`;
    throw new BootyError({
      stage: 'dhcp', code: 'dhcp-timeout',
      message: `no DHCP lease on ${this.#o.iface} (${this.#o.mac}) after ${Math.round(timeoutMs / 1000)} s: ${seen}`,
      hint: 'check the cable/VLAN and that a DHCP server answers on this network, or give a static ip= on the kernel command line',
    });
  }

  // ---------- renewal ----------

  async #maintain(): Promise<void> {
    while (!this.#stopped) {
      const lease = this.#lease;
      if (lease === undefined || lease.leaseTime === Infinity) return;
      const t1At = lease.obtainedAt + lease.renewalTime * 1000;
      const t2At = lease.obtainedAt + lease.rebindingTime * 1000;
      const expiresAt = lease.obtainedAt + lease.leaseTime * 1000;
      await this.#sleep(t1At - this.#clock.now());
      if (this.#stopped) return;

      let outcome = await this.#renewPhase('renewing', lease, t2At);
      if (outcome === 'timeout' && !this.#stopped) outcome = await this.#renewPhase('rebinding', lease, expiresAt);
      if (this.#stopped) return;
      if (outcome === 'ack') continue;

      const why = outcome === 'nak' ? 'the server refused to extend it (NAK)' : 'it expired with no server answering';
      this.#o.log.warn(`dhcp: lost lease ${lease.address} on ${this.#o.iface}: ${why}`);
      this.#lease = undefined;
      this.#setState('init');
      this.emit('lost', lease, why);
      // Start over, for as long as it takes: the agent may be mid-transfer and will resume.
      for (let round = 1; !this.#stopped; round++) {
        try {
          const fresh = await this.#acquire(60_000);
          this.#bind(fresh, 'bound');
          break;
        } catch (e) {
          if (this.#stopped) return;
          this.#o.log.warn(`dhcp: ${e instanceof Error ? e.message : String(e)} (round ${round}); retrying`);
        }
      }
    }
  }

  async #renewPhase(phase: 'renewing' | 'rebinding', lease: Lease, until: number): Promise<'ack' | 'nak' | 'timeout'> {
    this.#setState(phase);
    const clock = this.#clock;
    for (let attempt = 1; !this.#stopped && clock.now() < until; attempt++) {
      const xid = this.#newXid();
      const sentAt = clock.now();
      const packet = this.#packet(MessageType.REQUEST, xid, { ciaddr: lease.address, broadcastFlag: false, options: {} });
      const to = phase === 'renewing' ? lease.serverId : 'broadcast';
      this.#o.log.info(`dhcp: ${phase.toUpperCase()} ${lease.address}: REQUEST to ${to} (attempt ${attempt})`);
      const left = until - clock.now();
      const wait = Math.max(left / 2, Math.min(this.#o.renewRetryMinMs, left));
      const answer = this.#waitFor(xid, wait, (m) =>
        m.options.messageType === MessageType.ACK || m.options.messageType === MessageType.NAK);
      try {
        if (phase === 'renewing') await this.#o.transport.unicast(packet, lease.serverId);
        else await this.#o.transport.broadcast(packet);
      } catch (e) {
        this.#o.log.warn(`dhcp: ${phase} REQUEST not sent: ${e instanceof Error ? e.message : String(e)}`);
      }
      const reply = await answer;
      if (reply === undefined) continue;
      if (reply.options.messageType === MessageType.NAK) return 'nak';
      if (reply.yiaddr !== lease.address) {
        this.#o.log.warn(`dhcp: ${phase}: server moved us from ${lease.address} to ${reply.yiaddr}`);
      }
      this.#bind(leaseFromAck(reply, lease.serverId, sentAt, this.#o.log), 'renewed');
      return 'ack';
    }
    return 'timeout';
  }

  #bind(lease: Lease, event: 'bound' | 'renewed'): void {
    this.#lease = lease;
    this.#setState('bound');
    this.#o.log.info(`dhcp: ${event} ${this.#o.iface}: ${describeLease(lease)}`);
    this.emit(event, lease);
  }

  // ---------- plumbing ----------

  #setState(s: DhcpState): void {
    if (this.#state === s) return;
    this.#state = s;
    this.emit('state', s);
  }

  #newXid(): number {
    this.#xid = Math.floor(this.#random() * 0x100000000) >>> 0;
    return this.#xid;
  }

  #secs(started: number): number {
    return Math.floor((this.#clock.now() - started) / 1000);
  }

  /** interval ± up to 1 s (RFC 2131 4.1), never more than a quarter of the interval */
  #jitter(interval: number): number {
    const spread = Math.min(1000, interval / 4);
    return Math.max(1, Math.round(interval + (this.#random() * 2 - 1) * spread));
  }

  #packet(type: number, xid: number, p: { secs?: number; ciaddr?: string; broadcastFlag?: boolean; options: DhcpOptions }): Buffer {
    const options: DhcpOptions = {
      messageType: type,
      clientId: Buffer.concat([Buffer.from([1]), this.#chaddr]),
      ...p.options,
    };
    if (type !== MessageType.RELEASE) {
      options.paramRequestList = PARAMETERS;
      options.vendorClass = this.#o.vendorClass;
      options.maxMessageSize = 1472;
      if (this.#o.hostname) options.hostname = this.#o.hostname;
    }
    return encodeDhcp({
      xid, secs: p.secs ?? 0, chaddr: this.#chaddr,
      // Broadcast flag: the interface has no address yet, so the kernel would drop a unicast reply.
      flags: (p.broadcastFlag ?? true) ? FLAG_BROADCAST : 0,
      ciaddr: p.ciaddr,
      options,
    });
  }

  async #send(how: 'broadcast', packet: Buffer): Promise<void> {
    try {
      await this.#o.transport.broadcast(packet);
    } catch (e) {
      // A send error (link flapping, no carrier yet) is one more lost packet: retransmission covers it.
      this.#o.log.warn(`dhcp: send failed on ${this.#o.iface} (${how}): ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  #onPacket(packet: Buffer): void {
    let m: DhcpMessage;
    try {
      m = decodeDhcp(packet);
    } catch (e) {
      if (e instanceof DhcpDecodeError) { this.#o.log.debug(`dhcp: ignored malformed packet (${e.code}: ${e.message})`); return; }
      throw e;
    }
    if (m.op !== BOOTREPLY || m.xid !== this.#xid || !m.chaddr.subarray(0, 6).equals(this.#chaddr)) return;
    this.#o.log.debug(`dhcp: ${messageTypeName(m.options.messageType ?? 0)} from ${m.options.serverId ?? '?'} for ${m.yiaddr}`);
    const w = this.#waiter;
    if (w !== undefined && w.accept(m)) w.resolve(m);
  }

  /** Waits up to ms for a reply with this xid that `accept` likes; undefined on timeout/stop. */
  #waitFor(xid: number, ms: number, accept: (m: DhcpMessage) => boolean): Promise<DhcpMessage | undefined> {
    return new Promise((resolve) => {
      if (this.#stopped) { resolve(undefined); return; }
      const timer = this.#clock.setTimer(() => done(undefined), Math.max(0, ms));
      const done = (m: DhcpMessage | undefined) => {
        if (this.#waiter !== waiter) return;
        this.#waiter = undefined;
        this.#clock.clearTimer(timer);
        resolve(m);
      };
      const waiter: Waiter = { accept: (m) => m.xid === xid && accept(m), resolve: done };
      this.#waiter = waiter;
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#stopped || ms <= 0) { resolve(); return; }
      const wake = () => { this.#sleeps.delete(wake); this.#clock.clearTimer(timer); resolve(); };
      const timer = this.#clock.setTimer(wake, ms);
      this.#sleeps.add(wake);
    });
  }
}

/** An ACK answering a DISCOVER that asked for rapid commit: the server says it committed (option 80). */
function isRapidAck(m: DhcpMessage): boolean {
  return m.options.messageType === MessageType.ACK && m.options.rapidCommit === true;
}

/** DISCOVERs sent at the initial interval before it starts doubling. */
const flatDiscovers = 2;

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}
