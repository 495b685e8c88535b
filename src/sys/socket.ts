// Sockets Node cannot make: a DHCP client socket (UDP bound to 0.0.0.0:68 on one device, able to
// broadcast from an interface that has no address yet) and an rtnetlink socket (AF_NETLINK,
// NETLINK_ROUTE) to set links, addresses and routes. Both are created through libc with koffi.
//
// The UDP socket is handed to node:dgram once it is set up (dgram adopts an existing fd), so
// replies arrive on the event loop like any other I/O: no thread is parked in recv() and no timer
// polls. Netlink cannot be adopted by dgram (libuv knows only inet sockets), but the kernel answers
// rtnetlink requests synchronously, so a blocking recv with a receive timeout is enough there.
import dgram from 'node:dgram';
import { fn, check, sysError } from './libc.ts';

const AF_INET = 2;
const AF_NETLINK = 16;
const SOCK_DGRAM = 2;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_UDP = 17;
const NETLINK_ROUTE = 0;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_BROADCAST = 6;
const SO_RCVBUF = 8;
const SO_RCVTIMEO = 20;
const SO_BINDTODEVICE = 25;
const EINTR = 4;

type SocketFn = (domain: number, type: number, protocol: number) => number;
type SetsockoptFn = (fd: number, level: number, name: number, value: Buffer, len: number) => number;
type BindFn = (fd: number, addr: Buffer, len: number) => number;
type SendtoFn = (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, alen: number) => number | bigint;
type RecvFn = (fd: number, buf: Buffer, len: number, flags: number) => number | bigint;
type CloseFn = (fd: number) => number;

const sys = {
  socket: () => fn<SocketFn>('int socket(int domain, int type, int protocol)'),
  setsockopt: () => fn<SetsockoptFn>('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
  bind: () => fn<BindFn>('int bind(int fd, const void *addr, uint32_t len)'),
  sendto: () => fn<SendtoFn>('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t alen)'),
  recv: () => fn<RecvFn>('long recv(int fd, void *buf, size_t len, int flags)'),
  close: () => fn<CloseFn>('int close(int fd)'),
};

function setIntOption(fd: number, name: number, value: number, what: string): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value);
  check(sys.setsockopt()(fd, SOL_SOCKET, name, v, 4), what);
}

function closeQuietly(fd: number): void {
  sys.close()(fd);
}

/** sockaddr_in for 0.0.0.0:port (family in host order, port and address in network order). */
function sockaddrIn(port: number): Buffer {
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(AF_INET, 0);
  sa.writeUInt16BE(port, 2);
  return sa;
}

/**
 * A UDP socket bound to 0.0.0.0:<port> on one interface, allowed to broadcast, wrapped in a
 * node:dgram Socket. SO_BINDTODEVICE makes the kernel route 255.255.255.255 out of that interface
 * even before it has an address or a route, and keeps replies from other NICs out.
 */
export function openDhcpSocket(iface: string, port = 68): Promise<dgram.Socket> {
  const fd = check(sys.socket()(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP), 'socket(AF_INET, SOCK_DGRAM)');
  try {
    setIntOption(fd, SO_REUSEADDR, 1, 'setsockopt(SO_REUSEADDR)');
    setIntOption(fd, SO_BROADCAST, 1, 'setsockopt(SO_BROADCAST)');
    const name = Buffer.from(iface + '\0', 'utf8');
    check(sys.setsockopt()(fd, SOL_SOCKET, SO_BINDTODEVICE, name, name.length), `setsockopt(SO_BINDTODEVICE, ${iface})`);
    check(sys.bind()(fd, sockaddrIn(port), 16), `bind(0.0.0.0:${port} on ${iface})`);
  } catch (e) {
    closeQuietly(fd);
    throw e;
  }
  const sock = dgram.createSocket({ type: 'udp4' });
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => { closeQuietly(fd); reject(e); };
    sock.once('error', onError);
    sock.bind({ fd }, () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

/** An rtnetlink socket: send a request, read the kernel's replies (blocking, with a timeout). */
export interface NetlinkSocket {
  send(message: Buffer): void;
  /** One datagram from the kernel (may hold several netlink messages). */
  recv(): Buffer;
  close(): void;
}

export function openNetlinkRouteSocket(opts: { recvTimeoutMs?: number } = {}): NetlinkSocket {
  const fd = check(sys.socket()(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), 'socket(AF_NETLINK, NETLINK_ROUTE)');
  const kernel = Buffer.alloc(12); // sockaddr_nl: family, pad, pid 0 (the kernel), groups 0
  kernel.writeUInt16LE(AF_NETLINK, 0);
  try {
    setIntOption(fd, SO_RCVBUF, 1 << 20, 'setsockopt(SO_RCVBUF)');
    // A reply that never comes must not hang PID 1: recv gives up after the timeout.
    const ms = opts.recvTimeoutMs ?? 5000;
    const tv = Buffer.alloc(16);
    tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
    tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
    check(sys.setsockopt()(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16), 'setsockopt(SO_RCVTIMEO)');
    check(sys.bind()(fd, kernel, 12), 'bind(AF_NETLINK)');
  } catch (e) {
    closeQuietly(fd);
    throw e;
  }
  const buf = Buffer.alloc(1 << 16);
  let open = true;
  return {
    send(message) {
      if (!open) throw new Error('netlink socket is closed');
      check(sys.sendto()(fd, message, message.length, 0, kernel, 12), 'sendto(netlink)');
    },
    recv() {
      if (!open) throw new Error('netlink socket is closed');
      for (;;) {
        const n = Number(sys.recv()(fd, buf, buf.length, 0));
        if (n >= 0) return Buffer.from(buf.subarray(0, n));
        const e = sysError('recv(netlink)');
        if (e.errno === EINTR) continue;
        throw e;
      }
    },
    close() {
      if (open) { open = false; closeQuietly(fd); }
    },
  };
}

/** The libc socket calls, declared once for every socket booty makes through koffi (packet-socket.ts too). */
export { sys as socketCalls };
