// LLDPDUs (IEEE 802.1AB): what the switch port a NIC is plugged into says about itself. Parses a
// whole Ethernet frame (ethertype 0x88cc, an 802.1Q tag tolerated) into the neighbour's facts:
// chassis id and port id (with their subtypes), time to live, port description, system name and
// description, management addresses, and from the IEEE 802.1 organisational TLVs the port's VLAN
// id and VLAN names. Pure; refuses (throws) a frame that is not a well-formed LLDPDU.

export const LLDP_ETHERTYPE = 0x88cc;
/** nearest-bridge group address: what switches (and lldpd) send LLDPDUs to */
export const LLDP_MULTICAST = '01:80:c2:00:00:0e';

export interface LldpNeighbor {
  /** the frame's source MAC */
  sourceMac: string;
  chassisId: string;
  chassisIdSubtype: string;
  portId: string;
  portIdSubtype: string;
  /** seconds the information stays valid */
  ttl: number;
  portDescription?: string;
  systemName?: string;
  systemDescription?: string;
  managementAddresses?: string[];
  /** IEEE 802.1 Port VLAN ID (the untagged VLAN of the switch port) */
  vlan?: number;
  /** IEEE 802.1 VLAN Name TLVs: the VLANs the port carries, by id and name */
  vlans?: { id: number; name: string }[];
}

const CHASSIS_SUBTYPES = ['reserved', 'chassis-component', 'interface-alias', 'port-component', 'mac', 'network-address', 'interface-name', 'local'];
const PORT_SUBTYPES = ['reserved', 'interface-alias', 'port-component', 'mac', 'network-address', 'interface-name', 'agent-circuit-id', 'local'];
const IEEE_8021_OUI = 0x0080c2;

const macText = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** Text TLVs are meant to be printable; anything else is shown as hex rather than as mojibake. */
function text(b: Buffer): string {
  const s = b.toString('utf8');
  return /^[\x20-\x7e\u00a0-\uffff\t]*$/.test(s) && !s.includes('\ufffd') ? s.replace(/\0+$/, '') : b.toString('hex');
}

/** IANA address family 1 (IPv4) or 2 (IPv6), then the address. */
function networkAddress(b: Buffer): string {
  if (b[0] === 1 && b.length === 5) return [...b.subarray(1)].join('.');
  if (b[0] === 2 && b.length === 17) {
    const words: string[] = [];
    for (let i = 1; i < 17; i += 2) words.push(b.readUInt16BE(i).toString(16));
    return words.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
  }
  return b.toString('hex');
}

function idValue(subtype: string, v: Buffer): string {
  if (subtype === 'mac' && v.length === 6) return macText(v);
  if (subtype === 'network-address') return networkAddress(v);
  return text(v);
}

function bad(why: string): Error {
  return new Error(`not an LLDPDU: ${why}`);
}

export function parseLldpFrame(frame: Buffer): LldpNeighbor {
  if (frame.length < 14) throw bad(`${frame.length} bytes, shorter than an Ethernet header`);
  let off = 12;
  let type = frame.readUInt16BE(off);
  if (type === 0x8100 || type === 0x88a8) { off += 4; type = frame.length >= off + 2 ? frame.readUInt16BE(off) : 0; }
  if (type !== LLDP_ETHERTYPE) throw bad(`ethertype 0x${type.toString(16)}`);
  off += 2;
  const n: Partial<LldpNeighbor> & { sourceMac: string } = { sourceMac: macText(frame.subarray(6, 12)) };
  const mgmt: string[] = [];
  const vlans: { id: number; name: string }[] = [];
  let index = 0;
  for (;;) {
    if (off + 2 > frame.length) throw bad('it ends without an End of LLDPDU TLV');
    const hdr = frame.readUInt16BE(off);
    const t = hdr >> 9;
    const len = hdr & 0x1ff;
    const v = frame.subarray(off + 2, off + 2 + len);
    if (v.length !== len) throw bad(`TLV ${t} at byte ${off} claims ${len} bytes, ${v.length} left`);
    off += 2 + len;
    // the first three TLVs are mandatory and in this order (802.1AB 8.2)
    const expected = [1, 2, 3][index];
    if (expected !== undefined && t !== expected) throw bad(`TLV ${index + 1} has type ${t}, expected ${expected}`);
    index++;
    switch (t) {
      case 0: break;
      case 1: case 2: {
        if (len < 2) throw bad(`${t === 1 ? 'chassis' : 'port'} id TLV of ${len} bytes`);
        const names = t === 1 ? CHASSIS_SUBTYPES : PORT_SUBTYPES;
        const sub = names[v[0]] ?? `subtype-${v[0]}`;
        const value = idValue(sub, v.subarray(1));
        if (t === 1) { n.chassisIdSubtype = sub; n.chassisId = value; } else { n.portIdSubtype = sub; n.portId = value; }
        break;
      }
      case 3:
        if (len < 2) throw bad(`time-to-live TLV of ${len} bytes`);
        n.ttl = v.readUInt16BE(0);
        break;
      case 4: n.portDescription = text(v); break;
      case 5: n.systemName = text(v); break;
      case 6: n.systemDescription = text(v); break;
      case 8: {
        // address string length (subtype + address), subtype, address, then interface numbering
        const alen = v[0];
        if (alen >= 2 && alen + 1 <= v.length) mgmt.push(networkAddress(v.subarray(1, 1 + alen)));
        break;
      }
      case 127: {
        if (len < 4) break;
        const oui = v.readUIntBE(0, 3);
        const sub = v[3];
        if (oui === IEEE_8021_OUI && sub === 1 && len >= 6) {
          const pvid = v.readUInt16BE(4);
          if (pvid !== 0) n.vlan = pvid;
        } else if (oui === IEEE_8021_OUI && sub === 3 && len >= 7) {
          const nameLen = v[6];
          vlans.push({ id: v.readUInt16BE(4), name: text(v.subarray(7, 7 + nameLen)) });
        }
        break;
      }
      default: break; // capabilities and other TLVs: not part of the inventory
    }
    if (t === 0) break;
  }
  if (n.chassisId === undefined || n.portId === undefined || n.ttl === undefined) throw bad('a mandatory TLV is missing');
  return {
    sourceMac: n.sourceMac, chassisId: n.chassisId, chassisIdSubtype: n.chassisIdSubtype!, portId: n.portId, portIdSubtype: n.portIdSubtype!, ttl: n.ttl,
    ...(n.portDescription === undefined ? {} : { portDescription: n.portDescription }),
    ...(n.systemName === undefined ? {} : { systemName: n.systemName }),
    ...(n.systemDescription === undefined ? {} : { systemDescription: n.systemDescription }),
    ...(mgmt.length === 0 ? {} : { managementAddresses: mgmt }),
    ...(n.vlan === undefined ? {} : { vlan: n.vlan }),
    ...(vlans.length === 0 ? {} : { vlans }),
  };
}
