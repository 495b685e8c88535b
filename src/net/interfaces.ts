// The NICs of this machine as /sys/class/net shows them: name, MAC, carrier, operstate, type and
// whether a real device backs them. Read from sysfs (not netlink) so it works with a fake tree in
// unit tests (sysfsRoot) and needs no privileges.
import fs from 'node:fs';
import path from 'node:path';

export interface NetInterface {
  name: string;
  mac: string;
  /** true/false once the link is up; undefined while it is administratively down (EINVAL) */
  carrier: boolean | undefined;
  operstate: string;
  /** ARPHRD type: 1 = ethernet, 772 = loopback, 32 = infiniband */
  type: number;
  ifindex: number;
  /** backed by a device (PCI, virtio, USB) rather than a software link (veth, bridge, tun) */
  physical: boolean;
  loopback: boolean;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function readInterface(sysfsRoot: string, name: string): NetInterface | undefined {
  const dir = path.join(sysfsRoot, 'class/net', name);
  const type = Number(readText(path.join(dir, 'type')) ?? NaN);
  if (Number.isNaN(type)) return undefined;
  const carrier = readText(path.join(dir, 'carrier'));
  return {
    name,
    mac: (readText(path.join(dir, 'address')) ?? '').toLowerCase(),
    carrier: carrier === '1' ? true : carrier === '0' ? false : undefined,
    operstate: readText(path.join(dir, 'operstate')) ?? 'unknown',
    type,
    ifindex: Number(readText(path.join(dir, 'ifindex')) ?? 0),
    // /sys/class/net/X/device exists only for NICs a bus driver created
    physical: fs.existsSync(path.join(dir, 'device')),
    loopback: type === 772 || name === 'lo',
  };
}

/** Every interface except loopback, in ifindex order. */
export function listInterfaces(sysfsRoot = '/sys'): NetInterface[] {
  let names: string[];
  try {
    names = fs.readdirSync(path.join(sysfsRoot, 'class/net'));
  } catch {
    return [];
  }
  return names
    .map((n) => readInterface(sysfsRoot, n))
    .filter((i): i is NetInterface => i !== undefined && !i.loopback)
    .sort((a, b) => a.ifindex - b.ifindex || a.name.localeCompare(b.name));
}

/**
 * Interfaces worth trying for the boot network: ethernet-like ones with a MAC, physical first.
 * Software links (veth, bridges) count only when there is no physical NIC at all, which is the
 * case in containers and in test network namespaces.
 */
export function candidateInterfaces(all: NetInterface[]): NetInterface[] {
  const usable = all.filter((i) => i.type === 1 && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(i.mac) && i.mac !== '00:00:00:00:00:00');
  const physical = usable.filter((i) => i.physical);
  return physical.length > 0 ? physical : usable;
}

export function describeInterface(i: NetInterface): string {
  const carrier = i.carrier === undefined ? 'down' : i.carrier ? 'carrier' : 'no-carrier';
  return `${i.name} ${i.mac} ${carrier} ${i.operstate}${i.physical ? '' : ' (virtual)'}`;
}
