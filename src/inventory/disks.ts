// The disks of the inventory: every whole disk with a device behind it (no loop, ram, zram, dm,
// md; no optical drives, no hidden NVMe path nodes), from the same sysfs snapshot disk choice
// reads (src/agent/block-snapshot.ts), so a disk hint matches exactly what the inventory shows.
import type { InventoryDisk } from '../config/inventory.ts';
import { readBlockSnapshot } from '../agent/block-snapshot.ts';
import type { BlockEntry } from '../agent/disk-choice.ts';
import fs from 'node:fs';
import path from 'node:path';

const notADisk = /^(loop|ram|zram|dm-|md|sr|fd|nbd|drbd|rbd|zd)\d*|^mmcblk\d+(boot\d+|rpmb)$/;

export function inventoryDisk(e: BlockEntry): InventoryDisk {
  return {
    name: e.name,
    sizeBytes: e.sizeSectors * 512,
    logicalSectorSize: e.logicalBlockSize ?? 512,
    physicalSectorSize: e.physicalBlockSize ?? e.logicalBlockSize ?? 512,
    transport: e.transport ?? 'unknown',
    ...(e.rotational === undefined ? {} : { rotational: e.rotational }),
    removable: e.removable,
    readOnly: e.readOnly,
    ...(e.model === undefined ? {} : { model: e.model }),
    ...(e.vendor === undefined ? {} : { vendor: e.vendor }),
    ...(e.serial === undefined ? {} : { serial: e.serial }),
    ...(e.wwn === undefined ? {} : { wwn: e.wwn }),
  };
}

export function readDisks(sysRoot = '/sys'): InventoryDisk[] {
  const classBlock = path.join(sysRoot, 'class', 'block');
  return readBlockSnapshot(classBlock)
    .filter((e) => !e.partition && e.hidden !== true && !notADisk.test(e.name) && fs.existsSync(path.join(classBlock, e.name, 'device')))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map(inventoryDisk);
}
