// The real DhcpTransport: one UDP socket on port 68 bound to the interface (src/sys/socket.ts),
// sending to port 67 by broadcast or unicast. Thin on purpose: everything else is in client.ts.
import type dgram from 'node:dgram';
import { openDhcpSocket } from '../../sys/socket.ts';
import type { DhcpTransport } from './client.ts';

const SERVER_PORT = 67;

export async function openUdpTransport(iface: string): Promise<DhcpTransport> {
  const sock: dgram.Socket = await openDhcpSocket(iface);
  const handlers: ((p: Buffer) => void)[] = [];
  sock.on('message', (msg) => { for (const h of handlers) h(msg); });
  // A socket error must not crash PID 1: the client retransmits anyway.
  sock.on('error', () => { /* reported by the failing send() */ });
  let closed = false;
  const send = (packet: Buffer, address: string) => new Promise<void>((resolve, reject) => {
    if (closed) { reject(new Error('DHCP socket is closed')); return; }
    sock.send(packet, SERVER_PORT, address, (err) => (err ? reject(err) : resolve()));
  });
  return {
    broadcast: (packet) => send(packet, '255.255.255.255'),
    unicast: (packet, address) => send(packet, address),
    onPacket: (h) => { handlers.push(h); },
    close: () => new Promise<void>((resolve) => {
      if (closed) { resolve(); return; }
      closed = true;
      sock.close(() => resolve());
    }),
  };
}
