// rtnetlink wire format (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h):
// the requests booty sends (link up, address, routes, link dump) and the replies it reads (links,
// NLMSG_ERROR acks, NLMSG_DONE). Pure: Buffers in, Buffers out. Netlink headers are in the host's
// byte order (little endian on every machine booty targets: x86_64, arm64); addresses in network
// order.
import { ipToBytes, bytesToIp } from '../dhcp/codec.ts';

export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;
export const RTM = {
  NEWLINK: 16, DELLINK: 17, GETLINK: 18, SETLINK: 19,
  NEWADDR: 20, DELADDR: 21, GETADDR: 22,
  NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26,
} as const;
export const NLM_F = {
  REQUEST: 0x1, MULTI: 0x2, ACK: 0x4, ECHO: 0x8,
  ROOT: 0x100, MATCH: 0x200, DUMP: 0x300,
  REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400, APPEND: 0x800,
} as const;
export const IFF = { UP: 0x1, BROADCAST: 0x2, LOOPBACK: 0x8, RUNNING: 0x40, LOWER_UP: 0x10000 } as const;
export const IFLA = { ADDRESS: 1, BROADCAST: 2, IFNAME: 3, MTU: 4, LINK: 5, OPERSTATE: 16, CARRIER: 33 } as const;
export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4 } as const;
export const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, TABLE: 15 } as const;
export const RT_TABLE_MAIN = 254;
export const RT_SCOPE = { UNIVERSE: 0, LINK: 253, HOST: 254 } as const;
export const RTPROT = { BOOT: 3, STATIC: 4, DHCP: 16 } as const;
export const RTN_UNICAST = 1;
export const AF_UNSPEC = 0;
export const AF_INET = 2;
/** RFC 2863 operational states as IFLA_OPERSTATE numbers them. */
export const OPERSTATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'] as const;

const NLMSG_HDRLEN = 16;
const align4 = (n: number) => (n + 3) & ~3;

export class NetlinkDecodeError extends Error {
  constructor(message: string) { super(message); this.name = 'NetlinkDecodeError'; }
}

// ---------- building ----------

export function rtattr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

function u32attr(type: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return rtattr(type, b);
}

/** nlmsghdr + body (the body is already 4-byte aligned by its builders). */
export function nlmsg(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const hdr = Buffer.alloc(NLMSG_HDRLEN);
  hdr.writeUInt32LE(NLMSG_HDRLEN + body.length, 0);
  hdr.writeUInt16LE(type, 4);
  hdr.writeUInt16LE(flags, 6);
  hdr.writeUInt32LE(seq >>> 0, 8);
  hdr.writeUInt32LE(0, 12); // port id: 0 lets the kernel fill in ours
  return Buffer.concat([hdr, body]);
}

function ifinfomsg(p: { index: number; flags?: number; change?: number }): Buffer {
  const b = Buffer.alloc(16);
  b[0] = AF_UNSPEC;
  b.writeUInt16LE(0, 2); // ifi_type
  b.writeInt32LE(p.index, 4);
  b.writeUInt32LE(p.flags ?? 0, 8);
  b.writeUInt32LE(p.change ?? 0, 12);
  return b;
}

/** RTM_GETLINK dump: every link with its attributes. */
export function getLinksRequest(seq: number): Buffer {
  return nlmsg(RTM.GETLINK, NLM_F.REQUEST | NLM_F.DUMP, seq, ifinfomsg({ index: 0 }));
}

/** RTM_NEWLINK on an existing link: set or clear IFF_UP (and the MTU if given). */
export function setLinkRequest(seq: number, p: { index: number; up: boolean; mtu?: number }): Buffer {
  const attrs = p.mtu === undefined ? [] : [u32attr(IFLA.MTU, p.mtu)];
  return nlmsg(RTM.NEWLINK, NLM_F.REQUEST | NLM_F.ACK, seq,
    Buffer.concat([ifinfomsg({ index: p.index, flags: p.up ? IFF.UP : 0, change: IFF.UP }), ...attrs]));
}

export interface AddressSpec { index: number; address: string; prefix: number; broadcast?: string }

function ifaddrmsg(a: AddressSpec): Buffer {
  const b = Buffer.alloc(8);
  b[0] = AF_INET;
  b[1] = a.prefix;
  b[2] = 0; // flags
  b[3] = RT_SCOPE.UNIVERSE;
  b.writeUInt32LE(a.index, 4);
  return b;
}

/** RTM_NEWADDR (create or replace) / RTM_DELADDR for an IPv4 address on a link. */
export function addressRequest(seq: number, op: 'add' | 'del', a: AddressSpec): Buffer {
  const attrs = [rtattr(IFA.LOCAL, ipToBytes(a.address)), rtattr(IFA.ADDRESS, ipToBytes(a.address))];
  if (a.broadcast !== undefined) attrs.push(rtattr(IFA.BROADCAST, ipToBytes(a.broadcast)));
  const flags = op === 'add' ? NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.REPLACE : NLM_F.REQUEST | NLM_F.ACK;
  return nlmsg(op === 'add' ? RTM.NEWADDR : RTM.DELADDR, flags, seq, Buffer.concat([ifaddrmsg(a), ...attrs]));
}

export interface RouteSpec {
  /** destination network; '0.0.0.0' with prefix 0 is the default route */
  destination: string;
  prefix: number;
  gateway?: string;
  oif: number;
  /** preferred source address */
  source?: string;
  metric?: number;
  protocol?: number;
}

/**
 * RTM_NEWROUTE (create or replace) / RTM_DELROUTE in the main table. A route with no gateway is
 * on-link (scope link), e.g. `255.255.255.255/32 dev eth0` or a /32 to a gateway outside the subnet.
 */
export function routeRequest(seq: number, op: 'add' | 'del', r: RouteSpec): Buffer {
  const msg = Buffer.alloc(12);
  msg[0] = AF_INET;
  msg[1] = r.prefix;        // rtm_dst_len
  msg[2] = 0;               // rtm_src_len
  msg[3] = 0;               // rtm_tos
  msg[4] = RT_TABLE_MAIN;   // rtm_table
  msg[5] = r.protocol ?? RTPROT.BOOT;
  msg[6] = r.gateway === undefined ? RT_SCOPE.LINK : RT_SCOPE.UNIVERSE;
  msg[7] = RTN_UNICAST;
  msg.writeUInt32LE(0, 8);  // rtm_flags
  const attrs: Buffer[] = [];
  if (r.prefix > 0) attrs.push(rtattr(RTA.DST, ipToBytes(r.destination)));
  if (r.gateway !== undefined) attrs.push(rtattr(RTA.GATEWAY, ipToBytes(r.gateway)));
  attrs.push(u32attr(RTA.OIF, r.oif));
  if (r.source !== undefined) attrs.push(rtattr(RTA.PREFSRC, ipToBytes(r.source)));
  if (r.metric !== undefined) attrs.push(u32attr(RTA.PRIORITY, r.metric));
  const flags = op === 'add' ? NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.REPLACE : NLM_F.REQUEST | NLM_F.ACK;
  return nlmsg(op === 'add' ? RTM.NEWROUTE : RTM.DELROUTE, flags, seq, Buffer.concat([msg, ...attrs]));
}

// ---------- parsing ----------

export interface NetlinkMessage { type: number; flags: number; seq: number; pid: number; payload: Buffer }

/** Splits one datagram into its netlink messages. */
export function parseMessages(buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new NetlinkDecodeError(`netlink message at ${off} claims ${len} bytes, ${buf.length - off} left`);
    }
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

export function parseAttrs(buf: Buffer): Map<number, Buffer> {
  const attrs = new Map<number, Buffer>();
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & 0x3fff; // strip NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (len < 4 || off + len > buf.length) throw new NetlinkDecodeError(`attribute ${type} claims ${len} bytes`);
    attrs.set(type, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return attrs;
}

/** The errno of an NLMSG_ERROR message (0 = ack), and the sequence number it answers. */
export function parseError(m: NetlinkMessage): { errno: number; seq: number } {
  if (m.payload.length < 4) throw new NetlinkDecodeError('NLMSG_ERROR too short');
  const err = m.payload.readInt32LE(0);
  const seq = m.payload.length >= 4 + NLMSG_HDRLEN ? m.payload.readUInt32LE(4 + 8) : m.seq;
  return { errno: -err, seq };
}

export interface LinkInfo {
  index: number;
  name: string;
  flags: number;
  /** ARPHRD type: 1 = ethernet, 772 = loopback */
  type: number;
  mac?: string;
  mtu?: number;
  operstate: string;
  carrier?: boolean;
  up: boolean;
}

function cstr(b: Buffer): string {
  const nul = b.indexOf(0);
  return (nul < 0 ? b : b.subarray(0, nul)).toString('utf8');
}

export function parseLink(m: NetlinkMessage): LinkInfo {
  if (m.payload.length < 16) throw new NetlinkDecodeError('RTM_NEWLINK too short');
  const type = m.payload.readUInt16LE(2);
  const index = m.payload.readInt32LE(4);
  const flags = m.payload.readUInt32LE(8);
  const attrs = parseAttrs(m.payload.subarray(16));
  const name = attrs.get(IFLA.IFNAME);
  const addr = attrs.get(IFLA.ADDRESS);
  const mtu = attrs.get(IFLA.MTU);
  const oper = attrs.get(IFLA.OPERSTATE);
  const carrier = attrs.get(IFLA.CARRIER);
  return {
    index, type, flags,
    name: name === undefined ? `if${index}` : cstr(name),
    mac: addr !== undefined && addr.length === 6 ? [...addr].map((x) => x.toString(16).padStart(2, '0')).join(':') : undefined,
    mtu: mtu !== undefined && mtu.length >= 4 ? mtu.readUInt32LE(0) : undefined,
    operstate: oper !== undefined && oper.length >= 1 ? (OPERSTATES[oper[0]] ?? `state-${oper[0]}`) : 'unknown',
    carrier: carrier !== undefined && carrier.length >= 1 ? carrier[0] === 1 : undefined,
    up: (flags & IFF.UP) !== 0,
  };
}

/** For tests and debugging: decode an RTM_NEWADDR/RTM_NEWROUTE we built back into fields. */
export function describeAddressOrRoute(m: NetlinkMessage): Record<string, string | number> {
  const out: Record<string, string | number> = { type: m.type };
  if (m.type === RTM.NEWADDR || m.type === RTM.DELADDR) {
    out.prefix = m.payload[1];
    out.index = m.payload.readUInt32LE(4);
    const a = parseAttrs(m.payload.subarray(8));
    for (const [k, name] of [[IFA.LOCAL, 'local'], [IFA.ADDRESS, 'address'], [IFA.BROADCAST, 'broadcast']] as const) {
      const v = a.get(k);
      if (v !== undefined) out[name] = bytesToIp(v);
    }
  } else if (m.type === RTM.NEWROUTE || m.type === RTM.DELROUTE) {
    out.prefix = m.payload[1];
    out.table = m.payload[4];
    out.protocol = m.payload[5];
    out.scope = m.payload[6];
    const a = parseAttrs(m.payload.subarray(12));
    const dst = a.get(RTA.DST); if (dst !== undefined) out.destination = bytesToIp(dst);
    const gw = a.get(RTA.GATEWAY); if (gw !== undefined) out.gateway = bytesToIp(gw);
    const oif = a.get(RTA.OIF); if (oif !== undefined) out.oif = oif.readUInt32LE(0);
    const src = a.get(RTA.PREFSRC); if (src !== undefined) out.source = bytesToIp(src);
  }
  return out;
}
