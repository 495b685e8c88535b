// An in-memory DHCP server behind a fake DhcpTransport, for unit tests of the client state
// machine. It answers with packets built by the real codec, records everything the client sent
// (decoded, with the virtual time and destination), and can be told to go silent, ignore the
// first DISCOVERs or say NAK. Real-server behaviour is covered by the dnsmasq integration tests.
import {
  BOOTREPLY, MessageType, decodeDhcp, encodeDhcp,
} from '../../src/net/dhcp/codec.ts';
import type { DhcpMessage, DhcpOptions } from '../../src/net/dhcp/codec.ts';
import type { DhcpTransport } from '../../src/net/dhcp/client.ts';

export interface SentPacket { msg: DhcpMessage; to: string; at: number }

export class FakeDhcpServer {
  sent: SentPacket[] = [];
  online = true;
  ignoreDiscovers = 0;
  nakRequests = 0;
  /** answer a DISCOVER that asks for rapid commit (option 80) with an ACK carrying it (RFC 4039), as dnsmasq --dhcp-rapid-commit does */
  rapidCommit = false;
  closed = false;
  serverId = '10.9.0.1';
  pool = '10.9.0.50';
  options: DhcpOptions = {
    subnetMask: '255.255.255.0', routers: ['10.9.0.1'], dns: ['10.9.0.2', '10.9.0.3'],
    leaseTime: 120, renewalTime: 60, rebindingTime: 105, domainName: 'lab.example',
  };
  #handler: ((p: Buffer) => void) | undefined;
  #now: () => number;

  constructor(now: () => number) { this.#now = now; }

  readonly transport: DhcpTransport = {
    broadcast: async (p) => { this.#receive(p, 'broadcast'); },
    unicast: async (p, address) => { this.#receive(p, address); },
    onPacket: (h) => { this.#handler = h; },
    close: async () => { this.closed = true; },
  };

  /** Hands a raw datagram to the client as if it came off the wire. */
  inject(packet: Buffer): void {
    const h = this.#handler;
    if (h !== undefined) queueMicrotask(() => h(packet));
  }

  of(type: number): SentPacket[] {
    return this.sent.filter((s) => s.msg.options.messageType === type);
  }

  reply(to: DhcpMessage, type: number, extra: DhcpOptions = {}, yiaddr = this.pool, xid = to.xid): Buffer {
    return encodeDhcp({
      op: BOOTREPLY, xid, chaddr: to.chaddr, flags: to.flags, yiaddr,
      options: { messageType: type, serverId: this.serverId, ...(type === MessageType.NAK ? {} : this.options), ...extra },
    });
  }

  #receive(packet: Buffer, to: string): void {
    const msg = decodeDhcp(packet);
    this.sent.push({ msg, to, at: this.#now() });
    if (!this.online) return;
    const type = msg.options.messageType;
    if (type === MessageType.DISCOVER) {
      if (this.ignoreDiscovers > 0) { this.ignoreDiscovers--; return; }
      if (this.rapidCommit && msg.options.rapidCommit === true) this.inject(this.reply(msg, MessageType.ACK, { rapidCommit: true }));
      else this.inject(this.reply(msg, MessageType.OFFER));
    } else if (type === MessageType.REQUEST) {
      if (this.nakRequests > 0) { this.nakRequests--; this.inject(this.reply(msg, MessageType.NAK, { message: 'wrong network' }, '0.0.0.0')); return; }
      const addr = msg.options.requestedIp ?? msg.ciaddr;
      this.inject(this.reply(msg, MessageType.ACK, {}, addr));
    }
  }
}
