// The disk layout of a rootfs deploy (action field "layout"): the partition table booty creates
// before it extracts a rootfs tarball, in a form an operator writes by hand. Pure: the defaults,
// the normalization of what the schema let through, and the rules that need more than one field
// (one "/", one "rest", a BIOS boot partition for grub-bios on GPT, an ESP for grub-efi). Whether
// the layout fits a given disk is decided by src/rootfs/layout-plan.ts, which knows the disk.
import { BootyError } from '../util/errors.ts';
import { parseSize } from './disk-size.ts';

export type RootfsFs = 'ext4' | 'xfs' | 'vfat' | 'swap';
/** What the partition is for (its GPT type GUID / MBR type byte); derived from fs when omitted. */
export type PartitionRole = 'bios-boot' | 'esp' | 'linux' | 'swap';
export type Bootloader = 'grub-bios' | 'grub-efi' | 'both' | 'none';

export interface LayoutPartition {
  /** bytes, or 'rest': what is left of the disk (at most one partition) */
  size: number | 'rest';
  type: PartitionRole;
  /** undefined: no filesystem (a BIOS boot partition) */
  fs?: RootfsFs;
  /** absolute path in the deployed tree; undefined: not mounted (swap, BIOS boot) */
  mountpoint?: string;
  label?: string;
}

export interface RootfsLayout {
  table: 'gpt' | 'msdos';
  partitions: LayoutPartition[];
}

const MiB = 1 << 20;

/** "Just make it boot" on BIOS and UEFI alike: GPT, a 1 MiB BIOS boot partition (grub-bios
 *  embeds its core image there on GPT), a 512 MiB ESP and an ext4 root filling the disk. */
export function defaultLayout(): RootfsLayout {
  return {
    table: 'gpt',
    partitions: [
      { size: MiB, type: 'bios-boot' },
      { size: 512 * MiB, type: 'esp', fs: 'vfat', mountpoint: '/boot/efi', label: 'EFI' },
      { size: 'rest', type: 'linux', fs: 'ext4', mountpoint: '/', label: 'root' },
    ],
  };
}

/** Longest label each mkfs accepts. */
const LABEL_MAX: Record<RootfsFs, number> = { ext4: 16, xfs: 12, vfat: 11, swap: 15 };
/** Smallest filesystem each mkfs makes (mkfs.xfs refuses below 300 MiB; FAT32 needs ~33 MiB). */
const FS_MIN: Partial<Record<RootfsFs, number>> = { xfs: 300 * MiB, vfat: 33 * MiB, ext4: 2 * MiB, swap: MiB };

function layoutError(field: string, message: string): BootyError {
  return new BootyError({ stage: 'config', code: 'CONFIG_FIELD', message: `field "${field}" ${message}`, diskState: 'untouched' });
}

/** The layout of the JSON form (already checked by the schema) with defaults filled in and
 *  the rules across fields checked; `prefix` names the field in errors ("layout", "booty.layout"). */
export function normalizeLayout(j: unknown, prefix: string): RootfsLayout {
  if (j === undefined) return defaultLayout();
  const o = j as { table?: 'gpt' | 'msdos'; partitions: Array<{ size: number | string; fs?: RootfsFs; type?: PartitionRole; mountpoint?: string; label?: string }> };
  const table = o.table ?? 'gpt';
  const partitions = o.partitions.map((p, i): LayoutPartition => {
    const field = `${prefix}.partitions[${i}]`;
    const size = p.size === 'rest' ? 'rest' : parseSize(p.size);
    if (size === undefined) throw layoutError(`${field}.size`, `must be a size like "512MiB" or "rest", got ${JSON.stringify(p.size)}`);
    const type: PartitionRole = p.type ?? (p.fs === 'swap' ? 'swap' : p.fs === 'vfat' && p.mountpoint === '/boot/efi' ? 'esp' : 'linux');
    const out: LayoutPartition = { size, type };
    if (p.fs !== undefined) out.fs = p.fs;
    if (p.mountpoint !== undefined) out.mountpoint = p.mountpoint;
    if (p.label !== undefined) out.label = p.label;
    return out;
  });
  const layout = { table, partitions };
  checkLayout(layout, prefix);
  return layout;
}

/** The rules a layout must follow whatever the disk (each message names the field). */
export function checkLayout(l: RootfsLayout, prefix: string): void {
  const f = (i: number, k?: string) => `${prefix}.partitions[${i}]${k === undefined ? '' : `.${k}`}`;
  if (l.partitions.length === 0) throw layoutError(`${prefix}.partitions`, 'must list at least one partition (the root filesystem)');
  if (l.table === 'msdos' && l.partitions.length > 4) {
    throw layoutError(`${prefix}.partitions`, `has ${l.partitions.length} partitions; an msdos table takes at most 4 (booty makes no extended partitions): use "table": "gpt"`);
  }
  const mounts = new Map<string, number>();
  let rest: number | undefined;
  l.partitions.forEach((p, i) => {
    if (p.size === 'rest') {
      if (rest !== undefined) throw layoutError(f(i, 'size'), `is "rest" as is ${f(rest, 'size')}: only one partition can take the rest of the disk`);
      rest = i;
    } else if (p.size < MiB || p.size % MiB !== 0) {
      throw layoutError(f(i, 'size'), `must be a whole number of MiB (partitions are aligned to 1 MiB), got ${p.size} bytes`);
    }
    if (p.type === 'bios-boot') {
      if (l.table !== 'gpt') throw layoutError(f(i, 'type'), 'is "bios-boot", which only a GPT table has (on msdos grub embeds itself after the MBR)');
      if (p.fs !== undefined || p.mountpoint !== undefined) throw layoutError(f(i), 'is a BIOS boot partition: it takes no "fs" and no "mountpoint"');
      return;
    }
    if (p.fs === undefined) throw layoutError(f(i, 'fs'), 'is required (ext4, xfs, vfat or swap) unless "type" is "bios-boot"');
    if (p.type === 'esp' && p.fs !== 'vfat') throw layoutError(f(i, 'fs'), `must be "vfat" for an EFI system partition, got "${p.fs}"`);
    if ((p.type === 'swap') !== (p.fs === 'swap')) throw layoutError(f(i, 'type'), `"${p.type}" does not go with fs "${p.fs}"`);
    if (p.fs === 'swap' && p.mountpoint !== undefined) throw layoutError(f(i, 'mountpoint'), 'must be absent for swap');
    if (p.label !== undefined && Buffer.byteLength(p.label) > LABEL_MAX[p.fs]) {
      throw layoutError(f(i, 'label'), `is ${Buffer.byteLength(p.label)} bytes; ${p.fs} labels take at most ${LABEL_MAX[p.fs]}`);
    }
    const min = FS_MIN[p.fs];
    if (p.size !== 'rest' && min !== undefined && p.size < min) {
      throw layoutError(f(i, 'size'), `is ${p.size / MiB} MiB; mkfs makes ${p.fs} from ${min / MiB} MiB up`);
    }
    if (p.mountpoint !== undefined) {
      const other = mounts.get(p.mountpoint);
      if (other !== undefined) throw layoutError(f(i, 'mountpoint'), `"${p.mountpoint}" is also the mountpoint of ${f(other)}`);
      mounts.set(p.mountpoint, i);
    }
  });
  const root = mounts.get('/');
  if (root === undefined) throw layoutError(`${prefix}.partitions`, 'must have a partition with "mountpoint": "/" (the root filesystem)');
  if (l.partitions[root].fs === 'vfat') throw layoutError(f(root, 'fs'), 'cannot be vfat for the root filesystem (no owners, modes or symlinks)');
}

/** What the bootloader choice needs from the layout, checked before the disk is touched. */
export function checkBootloaderFits(l: RootfsLayout, bootloader: Bootloader, field: string): void {
  const wantsBios = bootloader === 'grub-bios' || bootloader === 'both';
  const wantsEfi = bootloader === 'grub-efi' || bootloader === 'both';
  if (wantsBios && l.table === 'gpt' && !l.partitions.some((p) => p.type === 'bios-boot')) {
    throw layoutError(field, `is "${bootloader}", which on a GPT disk needs a BIOS boot partition ({"size": "1MiB", "type": "bios-boot"}) for grub's core image`);
  }
  if (wantsEfi && !l.partitions.some((p) => p.type === 'esp' && p.mountpoint === '/boot/efi')) {
    throw layoutError(field, `is "${bootloader}", which needs an EFI system partition mounted at /boot/efi ({"size": "512MiB", "fs": "vfat", "mountpoint": "/boot/efi"})`);
  }
}
