// SMBIOS strings as the kernel exposes them under /sys/class/dmi/id (no dmidecode): system
// (type 1), board (type 2), BIOS (type 0). Firmware fills unset fields with placeholders such as
// "To be filled by O.E.M." or "Default string": those say nothing and are left out.
import path from 'node:path';
import type { MachineInventory } from '../config/inventory.ts';
import { printable, readText } from './sysfs-text.ts';

const files: [keyof MachineInventory['system'], string][] = [
  ['vendor', 'sys_vendor'], ['product', 'product_name'], ['version', 'product_version'], ['serial', 'product_serial'],
  ['uuid', 'product_uuid'], ['boardVendor', 'board_vendor'], ['boardProduct', 'board_name'], ['boardSerial', 'board_serial'],
  ['biosVendor', 'bios_vendor'], ['biosVersion', 'bios_version'], ['biosDate', 'bios_date'],
];

const placeholder = /^(to be filled by o\.?e\.?m\.?|default string|not specified|not applicable|none|system (product name|serial number|manufacturer|version)|0123456789|x+|0+|n\/a)$/i;

export function readDmi(sysRoot = '/sys'): MachineInventory['system'] {
  const dir = path.join(sysRoot, 'class', 'dmi', 'id');
  const out: MachineInventory['system'] = {};
  for (const [key, file] of files) {
    const v = printable(readText(path.join(dir, file)));
    if (v === undefined || placeholder.test(v)) continue;
    out[key] = key === 'uuid' ? v.toLowerCase() : v;
  }
  return out;
}
