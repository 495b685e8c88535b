// rtnetlink operations: list links, set a link up, add/remove addresses and routes. Each request
// asks for an ack and waits for the NLMSG_ERROR that answers its sequence number, so a refusal
// (EPERM, ENODEV, ENETUNREACH for a gateway off the subnet) surfaces as an error naming the
// operation instead of silently leaving the interface half configured.
import os from 'node:os';
import type { NetlinkSocket } from '../../sys/socket.ts';
import {
  NLMSG, addressRequest, getLinksRequest, parseError, parseLink, parseMessages, routeRequest, setLinkRequest,
} from './codec.ts';
import type { AddressSpec, LinkInfo, NetlinkMessage, RouteSpec } from './codec.ts';

const errnoNames: Record<number, string> = Object.fromEntries(
  Object.entries(os.constants.errno).map(([name, num]) => [num, name]),
);

export class NetlinkError extends Error {
  readonly errno: number;
  readonly code: string;
  constructor(what: string, errno: number) {
    const code = errnoNames[errno] ?? `errno ${errno}`;
    super(`${what}: ${code} (errno ${errno})`);
    this.name = 'NetlinkError';
    this.errno = errno;
    this.code = code;
  }
}

export class Rtnl {
  #sock: NetlinkSocket;
  #seq: number;

  constructor(sock: NetlinkSocket, firstSeq = Math.floor(Date.now() / 1000)) {
    this.#sock = sock;
    this.#seq = firstSeq >>> 0;
  }

  close(): void { this.#sock.close(); }

  /** Every link the kernel knows (RTM_GETLINK dump). */
  links(): LinkInfo[] {
    return this.#dump(getLinksRequest(this.#next()), 'list links').map(parseLink);
  }

  link(name: string): LinkInfo | undefined {
    return this.links().find((l) => l.name === name);
  }

  setLinkUp(index: number, up = true, mtu?: number): void {
    this.#request(setLinkRequest(this.#next(), { index, up, mtu }), `set link ${index} ${up ? 'up' : 'down'}${mtu ? ` mtu ${mtu}` : ''}`);
  }

  addAddress(a: AddressSpec): void {
    this.#request(addressRequest(this.#next(), 'add', a), `add address ${a.address}/${a.prefix} on link ${a.index}`);
  }

  delAddress(a: AddressSpec): void {
    this.#request(addressRequest(this.#next(), 'del', a), `remove address ${a.address}/${a.prefix} from link ${a.index}`);
  }

  addRoute(r: RouteSpec): void {
    this.#request(routeRequest(this.#next(), 'add', r), `add route ${describeRoute(r)}`);
  }

  delRoute(r: RouteSpec): void {
    this.#request(routeRequest(this.#next(), 'del', r), `remove route ${describeRoute(r)}`);
  }

  #next(): number {
    this.#seq = (this.#seq + 1) >>> 0;
    return this.#seq;
  }

  /** Sends a request and waits for its ack; throws NetlinkError on a negative ack. */
  #request(msg: Buffer, what: string): void {
    const seq = msg.readUInt32LE(8);
    this.#sock.send(msg);
    for (;;) {
      for (const m of parseMessages(this.#sock.recv())) {
        if (m.seq !== seq || m.type !== NLMSG.ERROR) continue; // stale replies of earlier requests
        const { errno } = parseError(m);
        if (errno !== 0) throw new NetlinkError(what, errno);
        return;
      }
    }
  }

  /** Sends a dump request and collects messages until NLMSG_DONE. */
  #dump(msg: Buffer, what: string): NetlinkMessage[] {
    const seq = msg.readUInt32LE(8);
    this.#sock.send(msg);
    const out: NetlinkMessage[] = [];
    for (;;) {
      for (const m of parseMessages(this.#sock.recv())) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG.DONE) return out;
        if (m.type === NLMSG.ERROR) {
          const { errno } = parseError(m);
          if (errno !== 0) throw new NetlinkError(what, errno);
          return out;
        }
        out.push(m);
      }
    }
  }
}

export function describeRoute(r: RouteSpec): string {
  const dst = r.prefix === 0 ? 'default' : `${r.destination}/${r.prefix}`;
  return `${dst}${r.gateway ? ` via ${r.gateway}` : ''} dev #${r.oif}`;
}
