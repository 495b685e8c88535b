// A raw AF_PACKET socket for one ethertype on one interface (LLDP, 0x88cc): Node has no
// AF_PACKET, so it is made through libc with koffi like the DHCP and netlink sockets
// (socket.ts). Non-blocking: the caller polls recv() on a timer, so PID 1 never parks its
// event loop in recv() while a deploy runs beside the listener.
import fs from 'node:fs';
import { check, sysError } from './libc.ts';
import { socketCalls as sys } from './socket.ts';

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_PACKET = 263;
const PACKET_ADD_MEMBERSHIP = 1;
const PACKET_MR_MULTICAST = 0;
const EAGAIN = 11;
const EINTR = 4;

export interface PacketSocket {
  /** the next frame (from the destination MAC on), or undefined when none is waiting */
  recv(): Buffer | undefined;
  close(): void;
}

const htons = (v: number) => ((v & 0xff) << 8) | (v >> 8);

/**
 * Frames of `ethertype` arriving on `iface`, with `multicast` (e.g. LLDP's 01:80:c2:00:00:0e)
 * added to the NIC's filter so a driver that filters multicast still passes them up.
 */
export function openPacketSocket(iface: string, ethertype: number, multicast?: string): PacketSocket {
  const ifindex = Number(fs.readFileSync(`/sys/class/net/${iface}/ifindex`, 'utf8').trim());
  const fd = check(sys.socket()(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ethertype)), `socket(AF_PACKET, 0x${ethertype.toString(16)})`);
  try {
    // sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype, halen, addr[8]
    const sll = Buffer.alloc(20);
    sll.writeUInt16LE(AF_PACKET, 0);
    sll.writeUInt16BE(ethertype, 2);
    sll.writeInt32LE(ifindex, 4);
    check(sys.bind()(fd, sll, sll.length), `bind(AF_PACKET on ${iface})`);
    if (multicast !== undefined) {
      // packet_mreq: ifindex, type, address length, address[8]
      const mreq = Buffer.alloc(16);
      mreq.writeInt32LE(ifindex, 0);
      mreq.writeUInt16LE(PACKET_MR_MULTICAST, 4);
      mreq.writeUInt16LE(6, 6);
      Buffer.from(multicast.replace(/[:-]/g, ''), 'hex').copy(mreq, 8);
      check(sys.setsockopt()(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq, mreq.length), `setsockopt(PACKET_ADD_MEMBERSHIP ${multicast} on ${iface})`);
    }
  } catch (e) {
    sys.close()(fd);
    throw e;
  }
  const buf = Buffer.alloc(9216);
  let open = true;
  return {
    recv() {
      if (!open) return undefined;
      for (;;) {
        const n = Number(sys.recv()(fd, buf, buf.length, 0));
        if (n >= 0) return Buffer.from(buf.subarray(0, n));
        const e = sysError(`recv(AF_PACKET on ${iface})`);
        if (e.errno === EINTR) continue;
        if (e.errno === EAGAIN) return undefined;
        throw e;
      }
    },
    close() {
      if (open) { open = false; sys.close()(fd); }
    },
  };
}
