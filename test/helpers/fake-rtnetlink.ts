// A fake rtnetlink kernel behind the NetlinkSocket interface, for unit tests of the rtnetlink
// layer and of bringUpNetwork without root. It decodes each request with the real codec, keeps a
// log of them, answers acks (or a chosen errno) and link dumps split over several datagrams, and
// can mirror "link up" into a fake sysfs tree so carrier appears as on a real NIC.
import type { NetlinkSocket } from '../../src/sys/socket.ts';
import {
  IFF, IFLA, NLMSG, NLM_F, RTM, describeAddressOrRoute, nlmsg, parseAttrs, parseMessages, rtattr,
} from '../../src/net/netlink/codec.ts';

export interface FakeLink { index: number; name: string; mac: string; flags: number; carrier: boolean; mtu: number }
export interface LoggedRequest { type: number; flags: number; fields: Record<string, string | number> }

export class FakeRtnetlink {
  links: FakeLink[] = [];
  requests: LoggedRequest[] = [];
  /** errno to answer the next request of this RTM type with (once) */
  failNext = new Map<number, number>();
  onLinkUp: (link: FakeLink, up: boolean) => void = () => {};
  closed = false;
  #queue: Buffer[] = [];

  readonly socket: NetlinkSocket = {
    send: (m) => this.#handle(m),
    recv: () => {
      const b = this.#queue.shift();
      if (b === undefined) throw new Error('fake netlink: recv with nothing queued (would block)');
      return b;
    },
    close: () => { this.closed = true; },
  };

  #ack(seq: number, errno: number, request: Buffer): Buffer {
    const body = Buffer.alloc(4 + 16);
    body.writeInt32LE(-errno, 0);
    request.copy(body, 4, 0, 16);
    return nlmsg(NLMSG.ERROR, 0, seq, body);
  }

  #linkMessage(l: FakeLink, seq: number): Buffer {
    const info = Buffer.alloc(16);
    info.writeUInt16LE(1, 2);
    info.writeInt32LE(l.index, 4);
    info.writeUInt32LE(l.flags | (l.carrier && l.flags & IFF.UP ? IFF.LOWER_UP | IFF.RUNNING : 0), 8);
    const mtu = Buffer.alloc(4); mtu.writeUInt32LE(l.mtu);
    return nlmsg(RTM.NEWLINK, NLM_F.MULTI, seq, Buffer.concat([
      info,
      rtattr(IFLA.IFNAME, Buffer.from(l.name + '\0')),
      rtattr(IFLA.ADDRESS, Buffer.from(l.mac.replace(/:/g, ''), 'hex')),
      rtattr(IFLA.MTU, mtu),
      rtattr(IFLA.OPERSTATE, Buffer.from([l.flags & IFF.UP ? (l.carrier ? 6 : 2) : 2])),
      rtattr(IFLA.CARRIER, Buffer.from([l.carrier ? 1 : 0])),
    ]));
  }

  #handle(raw: Buffer): void {
    for (const m of parseMessages(raw)) {
      const request = raw.subarray(0, 16);
      const fields = describeAddressOrRoute(m);
      if (m.type === RTM.NEWLINK) {
        fields.index = m.payload.readInt32LE(4);
        fields.up = m.payload.readUInt32LE(8) & IFF.UP;
        const mtu = parseAttrs(m.payload.subarray(16)).get(IFLA.MTU);
        if (mtu !== undefined) fields.mtu = mtu.readUInt32LE(0);
      }
      this.requests.push({ type: m.type, flags: m.flags, fields });
      const fail = this.failNext.get(m.type);
      if (fail !== undefined) {
        this.failNext.delete(m.type);
        this.#queue.push(this.#ack(m.seq, fail, request));
        continue;
      }
      if (m.type === RTM.GETLINK) {
        // a stale reply of another sequence number first: it must be skipped
        this.#queue.push(this.#ack(m.seq - 1, 0, request));
        // links two per datagram, then DONE alone
        for (let i = 0; i < this.links.length; i += 2) {
          this.#queue.push(Buffer.concat(this.links.slice(i, i + 2).map((l) => this.#linkMessage(l, m.seq))));
        }
        this.#queue.push(nlmsg(NLMSG.DONE, NLM_F.MULTI, m.seq, Buffer.alloc(4)));
        continue;
      }
      if (m.type === RTM.NEWLINK) {
        const link = this.links.find((l) => l.index === fields.index);
        if (link === undefined) { this.#queue.push(this.#ack(m.seq, 19 /* ENODEV */, request)); continue; }
        const up = (fields.up as number) !== 0;
        link.flags = up ? link.flags | IFF.UP : link.flags & ~IFF.UP;
        if (fields.mtu !== undefined) link.mtu = fields.mtu as number;
        this.onLinkUp(link, up);
      }
      this.#queue.push(this.#ack(m.seq, 0, request));
    }
  }

  /** requests of one kind, decoded */
  of(type: number): Record<string, string | number>[] {
    return this.requests.filter((r) => r.type === type).map((r) => r.fields);
  }
}
