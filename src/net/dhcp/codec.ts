// DHCP wire format (RFC 2131 message, RFC 2132 options, RFC 3396 long options, RFC 3442
// classless routes). Pure functions over Buffers: no sockets, no clock, so every byte can be
// tested and fuzzed. decodeDhcp() trusts nothing: any malformed, truncated or oversized input
// ends in a DhcpDecodeError, never in a RangeError, a hang or a partial result.

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
export const HTYPE_ETHER = 1;
export const MAGIC_COOKIE = 0x63825363;
export const FLAG_BROADCAST = 0x8000;
/** Fixed BOOTP header (236 bytes) plus the magic cookie. */
export const HEADER_LEN = 240;
/** The largest UDP payload an IPv4 packet can carry; anything longer is not a DHCP message. */
export const MAX_PACKET_LEN = 65507;
/** BOOTP relays and old servers expect at least 300 bytes. */
const MIN_PACKET_LEN = 300;

export const MessageType = {
  DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8,
} as const;
export type MessageTypeName = keyof typeof MessageType;
export type MessageTypeCode = (typeof MessageType)[MessageTypeName];

export function messageTypeName(code: number): string {
  for (const [name, c] of Object.entries(MessageType)) if (c === code) return name;
  return `type-${code}`;
}

/** Option codes booty reads or writes. */
export const Opt = {
  PAD: 0, SUBNET_MASK: 1, ROUTER: 3, DNS: 6, HOSTNAME: 12, DOMAIN_NAME: 15, MTU: 26,
  BROADCAST: 28, REQUESTED_IP: 50, LEASE_TIME: 51, OVERLOAD: 52, MESSAGE_TYPE: 53,
  SERVER_ID: 54, PARAM_REQUEST: 55, MESSAGE: 56, MAX_MESSAGE_SIZE: 57, T1: 58, T2: 59,
  VENDOR_CLASS: 60, CLIENT_ID: 61, RAPID_COMMIT: 80, CLASSLESS_ROUTES: 121, END: 255,
} as const;

export class DhcpDecodeError extends Error {
  readonly code: 'too-short' | 'too-long' | 'bad-header' | 'bad-cookie' | 'truncated-option' | 'bad-option';
  constructor(code: DhcpDecodeError['code'], message: string) {
    super(message);
    this.name = 'DhcpDecodeError';
    this.code = code;
  }
}

export interface ClasslessRoute { destination: string; prefix: number; gateway: string }

/** Options with a meaning booty understands, decoded and checked. */
export interface DhcpOptions {
  messageType?: number;
  serverId?: string;
  requestedIp?: string;
  leaseTime?: number;     // seconds; 0xffffffff = infinite
  renewalTime?: number;   // T1, seconds
  rebindingTime?: number; // T2, seconds
  subnetMask?: string;
  routers?: string[];
  dns?: string[];
  domainName?: string;
  hostname?: string;
  broadcast?: string;
  mtu?: number;
  classlessRoutes?: ClasslessRoute[];
  clientId?: Buffer;
  paramRequestList?: number[];
  vendorClass?: string;
  maxMessageSize?: number;
  message?: string;
  /** option 80 (RFC 4039), an empty flag: on a DISCOVER, the client takes an ACK in place of an
   *  OFFER; on an ACK, the server committed the lease at once */
  rapidCommit?: boolean;
}

export interface DhcpMessage {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** client hardware address: the first hlen bytes of chaddr */
  chaddr: Buffer;
  sname: string;
  file: string;
  options: DhcpOptions;
  /** every option as received (RFC 3396 concatenated), including the ones not decoded above */
  raw: Map<number, Buffer>;
}

// ---------- IPv4 address helpers ----------

export function ipToBytes(ip: string): Buffer {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new TypeError(`not an IPv4 address: '${ip}'`);
  const b = Buffer.alloc(4);
  parts.forEach((p, i) => {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new TypeError(`not an IPv4 address: '${ip}'`);
    b[i] = Number(p);
  });
  return b;
}

export function bytesToIp(b: Buffer, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export function isIpv4(s: string): boolean {
  try { ipToBytes(s); return true; } catch { return false; }
}

export function maskToPrefix(mask: string): number {
  const n = ipToBytes(mask).readUInt32BE(0);
  let bits = 0;
  while (bits < 32 && (n & (0x80000000 >>> bits)) !== 0) bits++;
  // a valid mask is contiguous ones: nothing may be set after the first zero
  const rebuilt = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  if (rebuilt !== n) throw new TypeError(`not a contiguous netmask: '${mask}'`);
  return bits;
}

export function prefixToMask(prefix: number): string {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new TypeError(`bad prefix length ${prefix}`);
  const n = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return bytesToIp(b);
}

/** The network address of ip/prefix (e.g. 10.0.2.15/24 → 10.0.2.0). */
export function networkOf(ip: string, prefix: number): string {
  const n = ipToBytes(ip).readUInt32BE(0);
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n & m) >>> 0);
  return bytesToIp(b);
}

export function sameSubnet(a: string, b: string, prefix: number): boolean {
  return networkOf(a, prefix) === networkOf(b, prefix);
}

// ---------- encoding ----------

export interface EncodeInput {
  op?: number;
  xid: number;
  secs?: number;
  flags?: number;
  ciaddr?: string;
  yiaddr?: string;
  siaddr?: string;
  giaddr?: string;
  chaddr: Buffer;
  sname?: string;
  file?: string;
  options: DhcpOptions;
  /** extra options written as they are (code → value), after the typed ones */
  extra?: Map<number, Buffer>;
}

function writeField(buf: Buffer, off: number, len: number, s: string | undefined): void {
  if (s === undefined) return;
  const b = Buffer.from(s, 'latin1');
  if (b.length >= len) throw new TypeError(`field longer than ${len - 1} bytes`);
  b.copy(buf, off);
}

function u8(n: number): Buffer { return Buffer.from([n]); }
function u16(n: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; }
function u32(n: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; }
function ips(list: string[]): Buffer { return Buffer.concat(list.map(ipToBytes)); }

function encodeClasslessRoutes(routes: ClasslessRoute[]): Buffer {
  const parts: Buffer[] = [];
  for (const r of routes) {
    const significant = Math.ceil(r.prefix / 8);
    parts.push(u8(r.prefix), ipToBytes(r.destination).subarray(0, significant), ipToBytes(r.gateway));
  }
  return Buffer.concat(parts);
}

/** The typed options as (code, value) pairs in a stable order. */
export function optionsToRaw(o: DhcpOptions): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  if (o.messageType !== undefined) m.set(Opt.MESSAGE_TYPE, u8(o.messageType));
  if (o.clientId !== undefined) m.set(Opt.CLIENT_ID, o.clientId);
  if (o.requestedIp !== undefined) m.set(Opt.REQUESTED_IP, ipToBytes(o.requestedIp));
  if (o.serverId !== undefined) m.set(Opt.SERVER_ID, ipToBytes(o.serverId));
  if (o.maxMessageSize !== undefined) m.set(Opt.MAX_MESSAGE_SIZE, u16(o.maxMessageSize));
  if (o.leaseTime !== undefined) m.set(Opt.LEASE_TIME, u32(o.leaseTime));
  if (o.renewalTime !== undefined) m.set(Opt.T1, u32(o.renewalTime));
  if (o.rebindingTime !== undefined) m.set(Opt.T2, u32(o.rebindingTime));
  if (o.subnetMask !== undefined) m.set(Opt.SUBNET_MASK, ipToBytes(o.subnetMask));
  if (o.routers !== undefined) m.set(Opt.ROUTER, ips(o.routers));
  if (o.dns !== undefined) m.set(Opt.DNS, ips(o.dns));
  if (o.domainName !== undefined) m.set(Opt.DOMAIN_NAME, Buffer.from(o.domainName, 'latin1'));
  if (o.hostname !== undefined) m.set(Opt.HOSTNAME, Buffer.from(o.hostname, 'latin1'));
  if (o.broadcast !== undefined) m.set(Opt.BROADCAST, ipToBytes(o.broadcast));
  if (o.mtu !== undefined) m.set(Opt.MTU, u16(o.mtu));
  if (o.classlessRoutes !== undefined) m.set(Opt.CLASSLESS_ROUTES, encodeClasslessRoutes(o.classlessRoutes));
  if (o.paramRequestList !== undefined) m.set(Opt.PARAM_REQUEST, Buffer.from(o.paramRequestList));
  if (o.vendorClass !== undefined) m.set(Opt.VENDOR_CLASS, Buffer.from(o.vendorClass, 'latin1'));
  if (o.message !== undefined) m.set(Opt.MESSAGE, Buffer.from(o.message, 'latin1'));
  if (o.rapidCommit === true) m.set(Opt.RAPID_COMMIT, Buffer.alloc(0));
  return m;
}

/** Encodes a message; values over 255 bytes are split into several instances (RFC 3396). */
export function encodeDhcp(msg: EncodeInput): Buffer {
  const head = Buffer.alloc(HEADER_LEN);
  head[0] = msg.op ?? BOOTREQUEST;
  head[1] = HTYPE_ETHER;
  if (msg.chaddr.length > 16) throw new TypeError('chaddr longer than 16 bytes');
  head[2] = msg.chaddr.length;
  head[3] = 0;
  head.writeUInt32BE(msg.xid >>> 0, 4);
  head.writeUInt16BE(Math.min(msg.secs ?? 0, 0xffff), 8);
  head.writeUInt16BE(msg.flags ?? 0, 10);
  ipToBytes(msg.ciaddr ?? '0.0.0.0').copy(head, 12);
  ipToBytes(msg.yiaddr ?? '0.0.0.0').copy(head, 16);
  ipToBytes(msg.siaddr ?? '0.0.0.0').copy(head, 20);
  ipToBytes(msg.giaddr ?? '0.0.0.0').copy(head, 24);
  msg.chaddr.copy(head, 28);
  writeField(head, 44, 64, msg.sname);
  writeField(head, 108, 128, msg.file);
  head.writeUInt32BE(MAGIC_COOKIE, 236);

  const opts: Buffer[] = [];
  const all = optionsToRaw(msg.options);
  for (const [code, value] of msg.extra ?? []) all.set(code, value);
  for (const [code, value] of all) {
    if (code === Opt.PAD || code === Opt.END) continue;
    if (value.length === 0) { opts.push(Buffer.from([code, 0])); continue; }
    for (let off = 0; off < value.length; off += 255) {
      const chunk = value.subarray(off, off + 255);
      opts.push(Buffer.from([code, chunk.length]), chunk);
    }
  }
  opts.push(u8(Opt.END));
  const out = Buffer.concat([head, ...opts]);
  if (out.length > MAX_PACKET_LEN) throw new TypeError('DHCP message too long');
  if (out.length >= MIN_PACKET_LEN) return out;
  return Buffer.concat([out, Buffer.alloc(MIN_PACKET_LEN - out.length)]);
}

// ---------- decoding ----------

/**
 * Walks one option area (the options field, or file/sname when overloaded), appending each
 * option's value to `into` (RFC 3396: repeated codes are concatenated in order).
 */
function readOptionArea(area: Buffer, where: string, into: Map<number, Buffer[]>): void {
  let i = 0;
  while (i < area.length) {
    const code = area[i];
    if (code === Opt.PAD) { i++; continue; }
    if (code === Opt.END) return;
    if (i + 1 >= area.length) throw new DhcpDecodeError('truncated-option', `option ${code} in ${where} has no length byte`);
    const len = area[i + 1];
    const start = i + 2;
    if (start + len > area.length) {
      throw new DhcpDecodeError('truncated-option', `option ${code} in ${where} claims ${len} bytes, ${area.length - start} left`);
    }
    let parts = into.get(code);
    if (parts === undefined) { parts = []; into.set(code, parts); }
    parts.push(area.subarray(start, start + len));
    i = start + len;
  }
  // An area without END is accepted (many servers pad to the end instead).
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return (nul < 0 ? b : b.subarray(0, nul)).toString('latin1');
}

function need(cond: boolean, code: number, what: string): void {
  if (!cond) throw new DhcpDecodeError('bad-option', `option ${code} (${what}) has a bad length`);
}

function ipList(v: Buffer, code: number, what: string): string[] {
  need(v.length >= 4 && v.length % 4 === 0, code, what);
  const out: string[] = [];
  for (let i = 0; i < v.length; i += 4) out.push(bytesToIp(v, i));
  return out;
}

function oneIp(v: Buffer, code: number, what: string): string {
  need(v.length === 4, code, what);
  return bytesToIp(v);
}

function uint32(v: Buffer, code: number, what: string): number {
  need(v.length === 4, code, what);
  return v.readUInt32BE(0);
}

/** A text option; one that is empty (or starts with NUL) says nothing and reads as absent. */
function text(v: Buffer, code: number, what: string): string | undefined {
  need(v.length >= 1, code, what);
  const s = cString(v);
  return s === '' ? undefined : s;
}

export function decodeClasslessRoutes(v: Buffer): ClasslessRoute[] {
  const routes: ClasslessRoute[] = [];
  let i = 0;
  while (i < v.length) {
    const prefix = v[i];
    if (prefix > 32) throw new DhcpDecodeError('bad-option', `option 121: prefix length ${prefix} > 32`);
    const significant = Math.ceil(prefix / 8);
    if (i + 1 + significant + 4 > v.length) throw new DhcpDecodeError('bad-option', 'option 121: truncated route');
    const dst = Buffer.alloc(4);
    v.copy(dst, 0, i + 1, i + 1 + significant);
    const destination = networkOf(bytesToIp(dst), prefix);
    const gateway = bytesToIp(v, i + 1 + significant);
    routes.push({ destination, prefix, gateway });
    i += 1 + significant + 4;
  }
  return routes;
}

/** Typed view of the options booty knows; throws DhcpDecodeError on a malformed known option. */
export function interpretOptions(raw: Map<number, Buffer>): DhcpOptions {
  const o: DhcpOptions = {};
  for (const [code, v] of raw) {
    switch (code) {
      case Opt.MESSAGE_TYPE:
        need(v.length === 1, code, 'message type');
        o.messageType = v[0];
        break;
      case Opt.SERVER_ID: o.serverId = oneIp(v, code, 'server identifier'); break;
      case Opt.REQUESTED_IP: o.requestedIp = oneIp(v, code, 'requested address'); break;
      case Opt.LEASE_TIME: o.leaseTime = uint32(v, code, 'lease time'); break;
      case Opt.T1: o.renewalTime = uint32(v, code, 'renewal time'); break;
      case Opt.T2: o.rebindingTime = uint32(v, code, 'rebinding time'); break;
      case Opt.SUBNET_MASK: {
        const mask = oneIp(v, code, 'subnet mask');
        try { maskToPrefix(mask); } catch { throw new DhcpDecodeError('bad-option', `option 1: ${mask} is not a netmask`); }
        o.subnetMask = mask;
        break;
      }
      case Opt.ROUTER: o.routers = ipList(v, code, 'router'); break;
      case Opt.DNS: o.dns = ipList(v, code, 'domain name server'); break;
      case Opt.DOMAIN_NAME: { const t = text(v, code, 'domain name'); if (t !== undefined) o.domainName = t; break; }
      case Opt.HOSTNAME: { const t = text(v, code, 'host name'); if (t !== undefined) o.hostname = t; break; }
      case Opt.BROADCAST: o.broadcast = oneIp(v, code, 'broadcast address'); break;
      case Opt.MTU:
        need(v.length === 2, code, 'interface MTU');
        o.mtu = v.readUInt16BE(0);
        break;
      case Opt.MAX_MESSAGE_SIZE:
        need(v.length === 2, code, 'maximum message size');
        o.maxMessageSize = v.readUInt16BE(0);
        break;
      case Opt.CLASSLESS_ROUTES:
        need(v.length >= 5, code, 'classless static routes');
        o.classlessRoutes = decodeClasslessRoutes(v);
        break;
      case Opt.CLIENT_ID:
        need(v.length >= 2, code, 'client identifier');
        o.clientId = Buffer.from(v);
        break;
      case Opt.PARAM_REQUEST:
        need(v.length >= 1, code, 'parameter request list');
        o.paramRequestList = [...v];
        break;
      case Opt.VENDOR_CLASS: { const t = text(v, code, 'vendor class'); if (t !== undefined) o.vendorClass = t; break; }
      case Opt.MESSAGE: o.message = v.toString('latin1'); break;
      case Opt.RAPID_COMMIT:
        need(v.length === 0, code, 'rapid commit');
        o.rapidCommit = true;
        break;
      default: break; // unknown options are kept in `raw` only
    }
  }
  return o;
}

/** Decodes a DHCP message; throws DhcpDecodeError for anything malformed. */
export function decodeDhcp(buf: Buffer): DhcpMessage {
  if (!Buffer.isBuffer(buf)) throw new DhcpDecodeError('bad-header', 'not a buffer');
  if (buf.length < HEADER_LEN) throw new DhcpDecodeError('too-short', `${buf.length} bytes, a DHCP message has at least ${HEADER_LEN}`);
  if (buf.length > MAX_PACKET_LEN) throw new DhcpDecodeError('too-long', `${buf.length} bytes, more than a UDP datagram holds`);
  const op = buf[0];
  if (op !== BOOTREQUEST && op !== BOOTREPLY) throw new DhcpDecodeError('bad-header', `op ${op} is neither request nor reply`);
  const hlen = buf[2];
  if (hlen > 16) throw new DhcpDecodeError('bad-header', `hardware address length ${hlen} > 16`);
  if (buf.readUInt32BE(236) !== MAGIC_COOKIE) throw new DhcpDecodeError('bad-cookie', 'no DHCP magic cookie (plain BOOTP or garbage)');

  const parts = new Map<number, Buffer[]>();
  readOptionArea(buf.subarray(HEADER_LEN), 'options', parts);
  const overloadParts = parts.get(Opt.OVERLOAD);
  let overload = 0;
  if (overloadParts !== undefined) {
    const v = Buffer.concat(overloadParts);
    if (v.length !== 1 || v[0] < 1 || v[0] > 3) throw new DhcpDecodeError('bad-option', 'option 52 (overload) must be 1, 2 or 3');
    overload = v[0];
    parts.delete(Opt.OVERLOAD);
    // RFC 2131 4.1: the file field is read before sname.
    if (overload & 1) readOptionArea(buf.subarray(108, 236), 'file', parts);
    if (overload & 2) readOptionArea(buf.subarray(44, 108), 'sname', parts);
    parts.delete(Opt.OVERLOAD); // an overload option inside an overloaded field is ignored
  }
  const raw = new Map<number, Buffer>();
  for (const [code, list] of parts) raw.set(code, Buffer.concat(list));

  return {
    op,
    htype: buf[1],
    hlen,
    hops: buf[3],
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: bytesToIp(buf, 12),
    yiaddr: bytesToIp(buf, 16),
    siaddr: bytesToIp(buf, 20),
    giaddr: bytesToIp(buf, 24),
    chaddr: Buffer.from(buf.subarray(28, 28 + hlen)),
    sname: overload & 2 ? '' : cString(buf.subarray(44, 108)),
    file: overload & 1 ? '' : cString(buf.subarray(108, 236)),
    options: interpretOptions(raw),
    raw,
  };
}

export function macToBytes(mac: string): Buffer {
  const hex = mac.split(/[:-]/);
  if (hex.length !== 6 || hex.some((h) => !/^[0-9a-fA-F]{2}$/.test(h))) throw new TypeError(`not a MAC address: '${mac}'`);
  return Buffer.from(hex.join(''), 'hex');
}

export function bytesToMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
