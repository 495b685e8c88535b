// The device path of partition N of a disk. The kernel inserts a "p" when the disk's name ends in
// a digit (nvme0n1p1, mmcblk0p1, loop0p1, md0p1) and not otherwise (sda1, vda1, xvda1). BOOTy
// always appended the number, which is wrong for NVMe. udev's by-id/by-path links use "-partN".
import fs from 'node:fs';
import path from 'node:path';

export function partitionPath(disk: string, number: number): string {
  if (!Number.isInteger(number) || number < 1) throw new RangeError(`partition number must be a positive integer, got ${number}`);
  if (/^\/dev\/disk\/by-[^/]+\//.test(disk)) return `${disk}-part${number}`;
  return /\d$/.test(disk) ? `${disk}p${number}` : `${disk}${number}`;
}

/** The kernel name of a disk ("sda") from a path, following symlinks such as /dev/disk/by-id/*. */
export function kernelName(disk: string): string {
  let real = disk;
  try { real = fs.realpathSync(disk); } catch { /* not there (yet): use the name as given */ }
  return path.basename(real);
}

/**
 * The partition's kernel name as sysfs knows it (reads /sys/class/block/<disk>/<part>/partition),
 * so odd naming schemes are handled by asking rather than guessing. undefined when the kernel
 * does not (yet) know the partition.
 */
export function sysfsPartitionName(diskName: string, number: number, sysBlock = '/sys/class/block'): string | undefined {
  const dir = path.join(sysBlock, diskName);
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return undefined; }
  for (const name of names) {
    if (!name.startsWith(diskName)) continue;
    try {
      if (Number(fs.readFileSync(path.join(dir, name, 'partition'), 'utf8').trim()) === number) return name;
    } catch { /* not a partition directory */ }
  }
  return undefined;
}
