// A layout (config/rootfs-layout.ts) placed on a given disk: each partition's first sector and
// length, aligned to 1 MiB, and the sfdisk script that writes exactly that table. Pure, so "does
// it fit" is answered (and refused, naming the numbers) before anything touches the disk.
//
// sfdisk, not booty's own GPT/MBR code, writes the new table: booty's codecs (src/disk/
// partition-table/) read tables and grow one partition in place; creating a table from nothing
// also means the protective MBR, both GPT headers and arrays with their CRCs, unique disk and
// partition GUIDs, 4Kn geometry and wiping old signatures (an old backup GPT at the end of the
// disk, stale filesystem magics). sfdisk does all of that, is already in the initramfs and is
// what operators check a disk with. booty keeps every decision: the script gives each partition's
// start and size in sectors, so sfdisk decides nothing, and booty then reads the table back with
// its own reader and refuses any difference (two independent implementations must agree).
import { BootyError } from '../util/errors.ts';
import { formatSize } from '../config/disk-size.ts';
import type { LayoutPartition, PartitionRole, RootfsLayout } from '../config/rootfs-layout.ts';

const MiB = 1 << 20;

export interface PlacedPartition extends LayoutPartition {
  /** the kernel's partition number (1-based, in layout order) */
  number: number;
  /** first sector and number of sectors, in the disk's logical sectors */
  start: number;
  sectors: number;
  bytes: number;
}

export interface LayoutPlan {
  table: 'gpt' | 'msdos';
  sectorSize: number;
  diskBytes: number;
  partitions: PlacedPartition[];
}

const GPT_TYPE: Record<PartitionRole, string> = {
  'bios-boot': '21686148-6449-6E6F-744E-656564454649',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  swap: '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F',
};
const MBR_TYPE: Record<PartitionRole, string> = { 'bios-boot': 'da', esp: 'ef', linux: '83', swap: '82' };

/** The GPT type GUID or MBR type byte booty writes for a type (as the table reader reports it). */
export function partitionTypeOf(table: 'gpt' | 'msdos', type: PartitionRole): string {
  return table === 'gpt' ? GPT_TYPE[type] : MBR_TYPE[type];
}

function doesNotFit(message: string): BootyError {
  return new BootyError({ stage: 'preflight', code: 'LAYOUT_DOES_NOT_FIT', message, diskState: 'untouched',
    hint: 'make the fixed sizes smaller, or deploy onto a larger disk' });
}

/** Where each partition goes on a disk of `diskBytes` with `sectorSize`-byte sectors. */
export function planLayout(layout: RootfsLayout, diskBytes: number, sectorSize: number): LayoutPlan {
  // The first MiB holds the MBR/GPT header and array; a GPT also keeps its backup array and
  // header in the last 33 sectors (512) / 5 (4096), so the usable end is aligned down below them.
  const first = MiB;
  const backup = layout.table === 'gpt' ? (sectorSize === 512 ? 33 : 5) * sectorSize : 0;
  const usableEnd = Math.floor((diskBytes - backup) / MiB) * MiB;
  // msdos addresses sectors with 32 bits
  if (layout.table === 'msdos' && usableEnd / sectorSize > 2 ** 32) {
    throw doesNotFit(`the disk is ${formatSize(diskBytes)}, beyond what an msdos table addresses (2^32 sectors): use "table": "gpt"`);
  }
  const fixed = layout.partitions.reduce((n, p) => n + (p.size === 'rest' ? 0 : p.size), 0);
  const hasRest = layout.partitions.some((p) => p.size === 'rest');
  const available = usableEnd - first;
  if (fixed + (hasRest ? MiB : 0) > available) {
    throw doesNotFit(`the layout needs ${formatSize(fixed)} for its fixed-size partitions${hasRest ? ' plus at least 1 MiB for "rest"' : ''}, ` +
      `but the disk has ${formatSize(available)} to partition (${formatSize(diskBytes)} in all); nothing was written`);
  }
  const rest = available - fixed;
  let at = first;
  const partitions = layout.partitions.map((p, i): PlacedPartition => {
    const bytes = p.size === 'rest' ? rest : p.size;
    const placed = { ...p, number: i + 1, start: at / sectorSize, sectors: bytes / sectorSize, bytes };
    at += bytes;
    return placed;
  });
  for (const p of partitions) {
    if (p.fs === 'xfs' && p.bytes < 300 * MiB) throw doesNotFit(`partition ${p.number} ("rest") gets ${formatSize(p.bytes)}; mkfs.xfs needs 300 MiB`);
    if (p.fs === 'vfat' && p.bytes < 33 * MiB) throw doesNotFit(`partition ${p.number} ("rest") gets ${formatSize(p.bytes)}; a FAT32 ESP needs 33 MiB`);
  }
  return { table: layout.table, sectorSize, diskBytes, partitions };
}

/** The sfdisk script for the plan (input of `sfdisk DISK`). */
export function sfdiskScript(plan: LayoutPlan): string {
  const lines = [`label: ${plan.table === 'gpt' ? 'gpt' : 'dos'}`, 'unit: sectors', ''];
  // msdos: the partition grub-bios reads /boot from is marked active (some BIOSes want one)
  const active = plan.table === 'msdos' ? activePartition(plan) : undefined;
  for (const p of plan.partitions) {
    const fields = [`start=${p.start}`, `size=${p.sectors}`, `type=${partitionTypeOf(plan.table, p.type)}`];
    if (plan.table === 'gpt' && p.label !== undefined) fields.push(`name="${p.label}"`);
    if (p.number === active) fields.push('bootable');
    lines.push(fields.join(', '));
  }
  return lines.join('\n') + '\n';
}

function activePartition(plan: LayoutPlan): number | undefined {
  return (plan.partitions.find((p) => p.mountpoint === '/boot') ?? plan.partitions.find((p) => p.mountpoint === '/'))?.number;
}
