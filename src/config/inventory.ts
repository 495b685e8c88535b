// Wire format of a machine's hardware inventory: what the agent found at boot (from sysfs and
// procfs, no dmidecode), sent to `POST {server}/api/machines/<mac>/inventory` with the machine's
// credential at every boot, validated by the server (inventory-schema.ts) and stored beside the
// machine. The one definition of the shape; collected by src/inventory/, shown by the server's
// summaries, the dashboard and `booty machines list`.

import type { LldpNeighbor } from '../net/lldp/lldpdu.ts';

export type { LldpNeighbor };
export const INVENTORY_VERSION = 1;

/** How a disk is attached, from its sysfs path: nvme, sata (libata), scsi (SCSI/SAS/virtio-scsi),
 *  virtio (virtio-blk), usb, mmc, or unknown. */
export type DiskTransport = 'nvme' | 'sata' | 'scsi' | 'virtio' | 'usb' | 'mmc' | 'unknown';

export interface InventoryDisk {
  /** kernel name: sda, nvme0n1, vda */
  name: string;
  sizeBytes: number;
  /** queue/logical_block_size: 512, or 4096 on 4Kn disks */
  logicalSectorSize: number;
  /** queue/physical_block_size */
  physicalSectorSize: number;
  transport: DiskTransport;
  rotational?: boolean;
  removable: boolean;
  readOnly: boolean;
  model?: string;
  vendor?: string;
  serial?: string;
  /** as sysfs has it: naa.…, eui.…, t10.… */
  wwn?: string;
}

export interface InventoryNic {
  name: string;
  /** aa:bb:cc:dd:ee:ff */
  mac: string;
  /** kernel driver (e1000, virtio_net, ...) */
  driver?: string;
  /** Mb/s; absent while the link is down or the driver does not say */
  speedMbps?: number;
  /** carrier */
  link: boolean;
  /** the switch port at the other end, when it spoke LLDP while the agent listened (README
   *  "LLDP neighbours"); absent: nothing heard (or not listened yet) */
  lldp?: LldpNeighbor;
}

export interface MachineInventory {
  version: typeof INVENTORY_VERSION;
  /** when the agent collected it (ISO 8601) */
  collected: string;
  /** SMBIOS type 1 / 2 / 0 strings (/sys/class/dmi/id) */
  system: {
    vendor?: string; product?: string; version?: string; serial?: string; uuid?: string;
    boardVendor?: string; boardProduct?: string; boardSerial?: string;
    biosVendor?: string; biosVersion?: string; biosDate?: string;
  };
  /** uefi when /sys/firmware/efi exists; secureBoot from the SecureBoot EFI variable (absent: unknown) */
  firmware: { mode: 'uefi' | 'bios'; secureBoot?: boolean };
  /** /proc/cpuinfo: logical CPUs (threads), sockets and cores when the kernel says */
  cpu: { model?: string; threads: number; sockets?: number; cores?: number };
  /** /proc/meminfo MemTotal: the memory the kernel manages (a little under what is installed) */
  memory: { totalBytes: number };
  disks: InventoryDisk[];
  nics: InventoryNic[];
}
