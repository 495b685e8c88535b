// NICs from /sys/class/net: interfaces with a device behind them (not lo, bridges, veth, tun),
// with MAC, driver (the `device/driver` link's name), speed (unreadable or -1 while the link is
// down: left out) and carrier.
import fs from 'node:fs';
import path from 'node:path';
import type { InventoryNic } from '../config/inventory.ts';
import { readInt, readText } from './sysfs-text.ts';

export function readNics(sysRoot = '/sys'): InventoryNic[] {
  const dir = path.join(sysRoot, 'class', 'net');
  let names: string[];
  try { names = fs.readdirSync(dir).sort(); } catch { return []; }
  const out: InventoryNic[] = [];
  for (const name of names) {
    const nic = path.join(dir, name);
    if (!fs.existsSync(path.join(nic, 'device'))) continue;
    const mac = readText(path.join(nic, 'address'))?.toLowerCase();
    if (mac === undefined || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5,19}$/.test(mac)) continue;
    let driver: string | undefined;
    try { driver = path.basename(fs.realpathSync(path.join(nic, 'device', 'driver'))); } catch { driver = undefined; }
    const speed = readInt(path.join(nic, 'speed'));
    out.push({
      name, mac,
      ...(driver === undefined ? {} : { driver }),
      ...(speed === undefined || speed <= 0 ? {} : { speedMbps: speed }),
      link: readText(path.join(nic, 'carrier')) === '1',
    });
  }
  return out;
}
