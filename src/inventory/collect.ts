// The machine's inventory as the agent reports it at every boot (src/config/inventory.ts): DMI,
// firmware, CPUs, memory, disks and NICs, read from sysfs and procfs only. Never throws: what
// cannot be read is left out (an inventory with less is better than none).
import { INVENTORY_VERSION, type MachineInventory } from '../config/inventory.ts';
import { readCpu, readMemory } from './cpu-memory.ts';
import { readDisks } from './disks.ts';
import { readDmi } from './dmi.ts';
import { readFirmware } from './firmware.ts';
import { readNics } from './nics.ts';

export interface InventoryRoots { sys?: string; proc?: string; now?: () => Date }

export function collectInventory(r: InventoryRoots = {}): MachineInventory {
  const sys = r.sys ?? '/sys';
  const proc = r.proc ?? '/proc';
  return {
    version: INVENTORY_VERSION,
    collected: (r.now?.() ?? new Date()).toISOString(),
    system: readDmi(sys),
    firmware: readFirmware(sys),
    cpu: readCpu(proc),
    memory: readMemory(proc),
    disks: readDisks(sys),
    nics: readNics(sys),
  };
}

/** One line for logs and listings: "QEMU Standard PC, serial S1, 2 CPUs, 1.0 GiB, 4 disks (nvme 64 MiB, ...)". */
export function summarizeInventory(inv: MachineInventory): string {
  const gib = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : `${Math.round(b / 2 ** 20)} MiB`);
  const s = inv.system;
  const who = [s.vendor, s.product].filter((x) => x !== undefined).join(' ') || 'unknown system';
  const parts = [who];
  if (s.serial !== undefined) parts.push(`serial ${s.serial}`);
  parts.push(`${inv.firmware.mode}${inv.firmware.secureBoot === true ? ' secure boot' : ''}`);
  parts.push(`${inv.cpu.threads} CPU${inv.cpu.threads === 1 ? '' : 's'}`);
  parts.push(`${gib(inv.memory.totalBytes)} RAM`);
  const disks = inv.disks.map((d) => `${d.name} ${d.transport} ${gib(d.sizeBytes)}${d.logicalSectorSize === 4096 ? ' 4Kn' : ''}`);
  parts.push(`${inv.disks.length} disk${inv.disks.length === 1 ? '' : 's'}${disks.length > 0 ? ` (${disks.join(', ')})` : ''}`);
  return parts.join(', ');
}
