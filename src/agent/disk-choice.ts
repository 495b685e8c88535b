// Which disk the agent writes when the action names none: the first real, writable,
// non-removable disk the kernel found. Pure: works on a snapshot of /sys/class/block (read by
// readBlockSnapshot in block-snapshot.ts), so the rules are unit-tested without hardware.
import { BootyError } from '../util/errors.ts';

export interface BlockEntry {
  /** kernel name: sda, vda, nvme0n1, nvme0n1p1, loop0 */
  name: string;
  /** true for partitions (sysfs has a `partition` file) */
  partition: boolean;
  /** for a partition: its disk's name */
  parent?: string;
  removable: boolean;
  readOnly: boolean;
  /** size in 512-byte sectors, as sysfs reports it */
  sizeSectors: number;
}

// Block devices that are never an install target: virtual, optical, floppy, eMMC boot areas.
const virtualNames = /^(loop|ram|zram|dm-|md|sr|fd|nbd|drbd|rbd|zd)\d*|^mmcblk\d+(boot\d+|rpmb)$/;

export function rejectReason(e: BlockEntry): string | undefined {
  if (e.partition) return 'a partition';
  if (virtualNames.test(e.name)) return 'a virtual or non-disk device';
  if (e.removable) return 'removable';
  if (e.readOnly) return 'read-only';
  if (e.sizeSectors === 0) return 'empty (size 0)';
  return undefined;
}

/** Natural order: sda < sdb < sdaa, nvme0n1 < nvme1n1 < nvme10n1, nvme0n1 < sda < vda. */
export function compareDiskNames(a: string, b: string): number {
  const split = (s: string) => s.split(/(\d+)/).map((p, i) => (i % 2 === 1 ? Number(p) : p));
  const pa = split(a);
  const pb = split(b);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    // sdz < sdaa: within one family (same first two letters) a shorter name comes first
    if (typeof x === 'string' && typeof y === 'string' && x.length !== y.length && x.slice(0, 2) === y.slice(0, 2)) return x.length - y.length;
    return String(x) < String(y) ? -1 : 1;
  }
  return 0;
}

function gib(sectors: number): string {
  return `${(sectors * 512 / 2 ** 30).toFixed(1)} GiB`;
}

export function describeSnapshot(snapshot: BlockEntry[]): string {
  const disks = snapshot.filter((e) => !e.partition);
  if (disks.length === 0) return 'the kernel sees no block devices at all (a storage driver missing from the initramfs?)';
  return disks
    .slice()
    .sort((a, b) => compareDiskNames(a.name, b.name))
    .map((e) => `${e.name} (${gib(e.sizeSectors)}${rejectReason(e) === undefined ? '' : `, ${rejectReason(e)}`})`)
    .join(', ');
}

export interface DiskChoice {
  disk: string;
  /** how it was chosen, for the log */
  reason: string;
}

/**
 * The target disk: `fromAction` (the action's field), else `fromCmdline` (booty.disk), else the
 * first eligible disk. A named disk must be a whole disk the kernel knows.
 */
export function chooseDisk(snapshot: BlockEntry[], fromAction?: string, fromCmdline?: string): DiskChoice {
  const named = fromAction ?? fromCmdline;
  if (named !== undefined) {
    const source = fromAction !== undefined ? 'the action' : 'booty.disk';
    const name = named.startsWith('/dev/') ? named.slice(5) : named;
    const entry = snapshot.find((e) => e.name === name);
    // Paths we cannot map to a kernel name (e.g. /dev/disk/by-id/...) are passed on as they are:
    // the writer checks them before the first write.
    if (entry === undefined && named.startsWith('/dev/') && name.includes('/')) return { disk: named, reason: `named by ${source}` };
    if (entry === undefined) {
      throw new BootyError({
        stage: 'preflight', code: 'disk-not-found', diskState: 'untouched',
        message: `disk ${named} (named by ${source}) does not exist; disks seen: ${describeSnapshot(snapshot)}`,
        hint: 'fix the disk name in the action or on the kernel command line',
      });
    }
    if (entry.partition) {
      throw new BootyError({
        stage: 'preflight', code: 'disk-is-partition', diskState: 'untouched',
        message: `disk /dev/${name} (named by ${source}) is a partition${entry.parent === undefined ? '' : ` of /dev/${entry.parent}`}, not a whole disk`,
        hint: 'name the whole disk',
      });
    }
    return { disk: `/dev/${name}`, reason: `named by ${source}` };
  }
  const eligible = snapshot.filter((e) => rejectReason(e) === undefined).sort((a, b) => compareDiskNames(a.name, b.name));
  if (eligible.length === 0) {
    throw new BootyError({
      stage: 'preflight', code: 'no-disk', diskState: 'untouched',
      message: `no disk to use: ${describeSnapshot(snapshot)}`,
      hint: 'check the storage controller and its driver, or name the disk with booty.disk=',
    });
  }
  const first = eligible[0];
  return { disk: `/dev/${first.name}`, reason: `first eligible disk (${gib(first.sizeSectors)}) of ${eligible.length}` };
}
