// LLDP neighbours for the inventory: on each NIC whose link is up, listen for the LLDPDUs the
// switch port sends (src/net/lldp/lldpdu.ts parses them) through a raw AF_PACKET socket
// (src/sys/packet-socket.ts), in the background, for a bounded window. Switches send every 30 s
// by default (802.1AB msgTxInterval; lldpd also sends once at its start), so the window is a bit
// longer than that, and nothing waits for it: the agent reports the neighbours in a second
// inventory once the window ends or every listened NIC has heard one (README "LLDP neighbours").
import type { InventoryNic, MachineInventory } from '../config/inventory.ts';
import { LLDP_ETHERTYPE, LLDP_MULTICAST, parseLldpFrame, type LldpNeighbor } from '../net/lldp/lldpdu.ts';
import { openPacketSocket, type PacketSocket } from '../sys/packet-socket.ts';
import type { Logger } from '../util/log.ts';

/** 30 s transmit interval plus its jitter and a margin */
export const LLDP_WINDOW_MS = 35_000;
const POLL_MS = 250;

export interface ListenLldpOptions {
  ifaces: string[];
  windowMs?: number;
  log: Pick<Logger, 'debug' | 'info' | 'warn'>;
  /** opens the socket of one interface (default: AF_PACKET through koffi) */
  open?: (iface: string) => PacketSocket;
}

/** Listens on every interface until each heard a neighbour or the window ended; never throws. */
export async function listenLldp(o: ListenLldpOptions): Promise<Map<string, LldpNeighbor>> {
  const heard = new Map<string, LldpNeighbor>();
  const open = o.open ?? ((iface: string) => openPacketSocket(iface, LLDP_ETHERTYPE, LLDP_MULTICAST));
  const sockets = new Map<string, PacketSocket>();
  for (const iface of o.ifaces) {
    try {
      sockets.set(iface, open(iface));
    } catch (e) {
      o.log.warn(`lldp: cannot listen on ${iface}: ${(e as Error).message}`);
    }
  }
  if (sockets.size === 0) return heard;
  const end = Date.now() + (o.windowMs ?? LLDP_WINDOW_MS);
  try {
    while (sockets.size > 0 && Date.now() < end) {
      for (const [iface, s] of [...sockets]) {
        for (let frame = s.recv(); frame !== undefined; frame = s.recv()) {
          try {
            const n = parseLldpFrame(frame);
            heard.set(iface, n);
            o.log.info(`lldp: ${iface}: ${describeNeighbor(n)}`);
            s.close();
            sockets.delete(iface);
            break;
          } catch (e) {
            o.log.debug(`lldp: ${iface}: ignored a frame: ${(e as Error).message}`);
          }
        }
      }
      if (sockets.size > 0) await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } catch (e) {
    o.log.warn(`lldp: ${(e as Error).message}`);
  } finally {
    for (const s of sockets.values()) s.close();
  }
  for (const iface of sockets.keys()) o.log.debug(`lldp: ${iface}: no LLDPDU within ${Math.round((o.windowMs ?? LLDP_WINDOW_MS) / 1000)} s`);
  return heard;
}

/** "switch tor7 (chassis mac 00:11:...) port Ethernet1/12 (interface-name) \"rack7 port 12\", VLAN 100" */
export function describeNeighbor(n: LldpNeighbor): string {
  return [
    `${n.systemName === undefined ? 'neighbour' : `switch ${n.systemName}`} (chassis ${n.chassisIdSubtype} ${n.chassisId})`,
    `port ${n.portId} (${n.portIdSubtype})${n.portDescription === undefined ? '' : ` "${n.portDescription}"`}`,
    ...(n.vlan === undefined ? [] : [`VLAN ${n.vlan}`]),
  ].join(' ');
}

/** The inventory with the neighbours heard on its NICs. */
export function withNeighbors(inv: MachineInventory, heard: Map<string, LldpNeighbor>): MachineInventory {
  return { ...inv, nics: inv.nics.map((n): InventoryNic => (heard.has(n.name) ? { ...n, lldp: heard.get(n.name)! } : n)) };
}

/**
 * The agent's background step: listen on the NICs of `inv` whose link is up, then send the
 * inventory again when anything was heard. Runs beside the action; never throws.
 */
export async function reportLldpNeighbors(inv: MachineInventory, send: (inv: MachineInventory) => Promise<boolean>, log: ListenLldpOptions['log'], windowMs = LLDP_WINDOW_MS): Promise<void> {
  try {
    const ifaces = inv.nics.filter((n) => n.link).map((n) => n.name);
    if (ifaces.length === 0) return;
    const heard = await listenLldp({ ifaces, windowMs, log });
    if (heard.size === 0) {
      log.info(`lldp: no neighbour spoke within ${Math.round(windowMs / 1000)} s on ${ifaces.join(', ')}`);
      return;
    }
    if (await send(withNeighbors(inv, heard))) log.info(`lldp: neighbours of ${[...heard.keys()].join(', ')} sent with the inventory`);
  } catch (e) {
    log.warn(`lldp: ${(e as Error).message}`);
  }
}
