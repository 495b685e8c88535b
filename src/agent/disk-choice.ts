// Which disk the agent writes when the action names none: the smallest eligible disk matching
// the action's disk hints (disk-hints.ts), else the first real, writable, non-removable disk the
// kernel found. Pure: works on a snapshot of /sys/class/block (read by readBlockSnapshot in
// block-snapshot.ts), so the rules are unit-tested without hardware.
import type { DiskHints } from '../config/action.ts';
import { summarizeDiskHints } from '../config/parse.ts';
import { BootyError } from '../util/errors.ts';
import { describeDisk, hintMismatches } from './disk-hints.ts';

export interface BlockEntry {
  /** kernel name: sda, vda, nvme0n1, nvme0n1p1, loop0 */
  name: string;
  /** true for partitions (sysfs has a `partition` file) */
  partition: boolean;
  /** for a partition: its disk's name */
  parent?: string;
  removable: boolean;
  readOnly: boolean;
  /** sysfs `hidden` (NVMe multipath path nodes such as nvme0c0n1: no /dev node) */
  hidden?: boolean;
  /** size in 512-byte sectors, as sysfs reports it */
  sizeSectors: number;
  // What disk hints match on; undefined where sysfs does not say (read by block-snapshot.ts).
  serial?: string;
  model?: string;
  vendor?: string;
  /** as sysfs has it, e.g. naa.5000c500a1b2c3d4, eui.0025388b71b1b3c2 */
  wwn?: string;
  /** queue/rotational: true = spinning disk */
  rotational?: boolean;
  /** SCSI host:channel:target:lun */
  hctl?: string;
  /** the names udev would give it under /dev/disk/by-path (current, then compatibility names) */
  byPath?: string[];
  /** how it is attached, from its sysfs path (block-snapshot.ts transportOf) */
  transport?: 'nvme' | 'sata' | 'scsi' | 'virtio' | 'usb' | 'mmc';
  /** queue/logical_block_size and queue/physical_block_size */
  logicalBlockSize?: number;
  physicalBlockSize?: number;
}

// Block devices that are never an install target: virtual, optical, floppy, eMMC boot areas.
const virtualNames = /^(loop|ram|zram|dm-|md|sr|fd|nbd|drbd|rbd|zd)\d*|^mmcblk\d+(boot\d+|rpmb)$/;

export function rejectReason(e: BlockEntry): string | undefined {
  if (e.partition) return 'a partition';
  if (virtualNames.test(e.name)) return 'a virtual or non-disk device';
  if (e.hidden === true) return 'hidden (a path of a multipath NVMe disk)';
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
  /** with hints: the other disks that matched too (not used because larger), for the log */
  alsoMatched?: string[];
}

/**
 * The target disk: `fromAction` (the action's field), else the smallest eligible disk matching
 * `hints` (the action's diskHints), else `fromCmdline` (booty.disk), else the first eligible disk.
 * A named disk must be a whole disk the kernel knows.
 */
export function chooseDisk(snapshot: BlockEntry[], fromAction?: string, fromCmdline?: string, hints?: DiskHints): DiskChoice {
  if (fromAction === undefined && hints !== undefined) return chooseByHints(snapshot, hints);
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

const bySizeThenName = (a: BlockEntry, b: BlockEntry) => a.sizeSectors - b.sizeSectors || compareDiskNames(a.name, b.name);

/**
 * Ironic's rule: every hint must match; of several matching disks the smallest is used (the
 * likeliest to be the boot disk rather than a data disk), ties broken by name.
 */
export function chooseByHints(snapshot: BlockEntry[], hints: DiskHints): DiskChoice {
  const wanted = summarizeDiskHints(hints);
  const disks = snapshot.filter((e) => !e.partition).sort((a, b) => compareDiskNames(a.name, b.name));
  const matched: BlockEntry[] = [];
  const refused: string[] = [];
  const neverTargets: string[] = [];
  for (const e of disks) {
    const ineligible = rejectReason(e);
    // loop, ram, zram, dm-, sr...: listed in one line, they are never what the operator meant
    if (ineligible !== undefined && virtualNames.test(e.name)) { neverTargets.push(e.name); continue; }
    const why = ineligible !== undefined ? [ineligible] : hintMismatches(e, hints);
    if (why.length === 0) matched.push(e);
    else refused.push(`- ${describeDisk(e)}\n  not used: ${why.join('; ')}`);
  }
  if (matched.length === 0) {
    const seen = disks.length === 0 ? describeSnapshot(snapshot) : [
      ...refused,
      ...(neverTargets.length === 0 ? [] : [`- never a target (virtual or optical): ${neverTargets.join(', ')}`]),
    ].join('\n');
    throw new BootyError({
      stage: 'preflight', code: 'disk-hints-no-match', diskState: 'untouched',
      message: `no disk matches the disk hints (${wanted}); disks seen:\n${seen}`,
      hint: 'fix diskHints in the action (e.g. booty machines set MAC --disk-serial ...), or check the disk and its storage driver',
    });
  }
  matched.sort(bySizeThenName);
  const [best, ...others] = matched;
  const alsoMatched = others.map((e) => `/dev/${e.name} (${gib(e.sizeSectors)})`);
  const reason = others.length === 0
    ? `the only disk matching the disk hints (${wanted})`
    : `the smallest of ${matched.length} disks matching the disk hints (${wanted}); also matched: ${alsoMatched.join(', ')}`;
  return { disk: `/dev/${best.name}`, reason, ...(others.length === 0 ? {} : { alsoMatched }) };
}
