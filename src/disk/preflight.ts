// Checks before the first byte is written to (or read from) a disk: it exists, it is a block
// device or a regular file, it is a whole disk and not a partition, nothing has it mounted (the
// disk itself or any of its partitions, per /proc/self/mountinfo and /proc/swaps), nothing holds
// it (LVM, dm, md: /sys/class/block/X/holders), and it is large enough when the image size is
// known. Pure file reads only (sysfs and procfs under configurable roots, so tests can build a
// fake tree); the kernel's own exclusive open (O_EXCL) in target.ts is the last word.
import fs from 'node:fs';
import path from 'node:path';
import { BootyError } from '../util/errors.ts';

export interface DiskInfo {
  /** the path as given */
  path: string;
  kind: 'block' | 'file';
  /** bytes (a regular file: its current size; 0 means it grows as the image is written) */
  size: number;
  /** kernel name (sda, nvme0n1, loop3) for block devices */
  name?: string;
  /** "major:minor" for block devices */
  dev?: string;
  isPartition: boolean;
  /** kernel names of the disk's partitions */
  partitions: string[];
  /** from sysfs queue/: 0 when the device has no write-zeroes offload (the kernel then writes zero pages) */
  writeZeroesMaxBytes?: number;
  discardMaxBytes?: number;
  logicalBlockSize?: number;
}

export interface PreflightOptions {
  /** 'write' refuses mounted/held disks; 'read' (capture) refuses them unless allowMounted */
  mode: 'write' | 'read';
  /** accept a partition as the target (normally a mistake: the image has its own table) */
  allowPartition?: boolean;
  /** capture only: read a disk even while something has it mounted (the copy may be inconsistent) */
  allowMounted?: boolean;
  sysRoot?: string;
  procRoot?: string;
}

export interface MountEntry { dev: string; mountPoint: string; fsType: string; source: string }

/** /proc/self/mountinfo: `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue` */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (left.length < 5 || right.length < 2) continue;
    out.push({ dev: left[2], mountPoint: unescapeOctal(left[4]), fsType: right[0], source: unescapeOctal(right[1]) });
  }
  return out;
}

/** /proc/swaps: a header, then `Filename Type Size Used Priority`. */
export function parseSwaps(text: string): string[] {
  return text.split('\n').slice(1).map((l) => l.trim().split(/\s+/)[0]).filter((s) => s !== undefined && s !== '').map(unescapeOctal);
}

function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

function fail(code: string, message: string, hint: string): BootyError {
  return new BootyError({ stage: 'preflight', code, message, offset: 0, diskState: 'untouched', hint });
}

function readText(p: string): string | undefined {
  try { return fs.readFileSync(p, 'utf8').trim(); } catch { return undefined; }
}

function readNumber(p: string): number | undefined {
  const t = readText(p);
  return t !== undefined && /^\d+$/.test(t) ? Number(t) : undefined;
}

function listDir(p: string): string[] {
  try { return fs.readdirSync(p); } catch { return []; }
}

function majorMinor(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** Inspects `diskPath` and throws a preflight BootyError when it must not be used. */
export function preflightDisk(diskPath: string, opts: PreflightOptions): DiskInfo {
  const sysRoot = opts.sysRoot ?? '/sys';
  const procRoot = opts.procRoot ?? '/proc';
  let st: fs.BigIntStats;
  try { st = fs.statSync(diskPath, { bigint: true }); } catch (e) {
    throw fail('DISK_NOT_FOUND', `${diskPath} does not exist (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      'check the device name (lsblk lists the disks; inside booty, the failure screen does too)');
  }
  const realPath = fs.realpathSync(diskPath);
  const mounts = parseMountinfo(readText(path.join(procRoot, 'self/mountinfo')) ?? '');
  const swaps = parseSwaps(readText(path.join(procRoot, 'swaps')) ?? '');
  const refuseInUse = opts.mode === 'write' || opts.allowMounted !== true;

  if (st.isFile()) {
    const info: DiskInfo = { path: diskPath, kind: 'file', size: Number(st.size), isPartition: false, partitions: [] };
    if (refuseInUse) {
      for (const loop of listDir(path.join(sysRoot, 'block'))) {
        const backing = readText(path.join(sysRoot, 'block', loop, 'loop/backing_file'));
        if (backing !== undefined && backing === realPath) {
          throw fail('DISK_IN_USE', `${diskPath} is attached to /dev/${loop}`, `detach it first (losetup -d /dev/${loop})`);
        }
      }
      if (swaps.includes(realPath)) throw fail('DISK_IN_USE', `${diskPath} is an active swap file`, `swapoff ${diskPath} first`);
    }
    return info;
  }
  if (!st.isBlockDevice()) {
    throw fail('DISK_NOT_BLOCK', `${diskPath} is neither a block device nor a regular file`, 'give the whole-disk device, e.g. /dev/sda or /dev/nvme0n1');
  }

  const dev = majorMinor(st.rdev);
  const sysDir = path.join(sysRoot, 'dev/block', dev);
  let sysReal: string;
  try { sysReal = fs.realpathSync(sysDir); } catch {
    throw fail('DISK_NOT_FOUND', `${diskPath} (${dev}) is not known to the kernel (no ${sysDir})`, 'check that the device node matches a present disk');
  }
  const name = path.basename(sysReal);
  const isPartition = fs.existsSync(path.join(sysReal, 'partition'));
  if (isPartition && opts.allowPartition !== true) {
    const parent = path.basename(path.dirname(sysReal));
    throw fail('DISK_IS_PARTITION', `${diskPath} is a partition of /dev/${parent}, not a whole disk`,
      `images carry their own partition table: give /dev/${parent}${opts.mode === 'write' ? ' (or force a partition with --allow-partition)' : ''}`);
  }
  const partitions = listDir(sysReal).filter((d) => fs.existsSync(path.join(sysReal, d, 'partition')));
  const queue = path.join(isPartition ? path.dirname(sysReal) : sysReal, 'queue');
  const info: DiskInfo = {
    path: diskPath, kind: 'block', name, dev, isPartition, partitions,
    size: (readNumber(path.join(sysReal, 'size')) ?? 0) * 512,
    writeZeroesMaxBytes: readNumber(path.join(queue, 'write_zeroes_max_bytes')),
    discardMaxBytes: readNumber(path.join(queue, 'discard_max_bytes')),
    logicalBlockSize: readNumber(path.join(queue, 'logical_block_size')),
  };
  if (!refuseInUse) return info;

  // the disk and each partition: mounted? swap? held by dm/md/bcache?
  const members = [{ name, dev, sys: sysReal }, ...partitions.map((p) => ({
    name: p, dev: readText(path.join(sysReal, p, 'dev')) ?? '', sys: path.join(sysReal, p),
  }))];
  for (const m of members) {
    const devPath = `/dev/${m.name}`;
    const mount = mounts.find((e) => (m.dev !== '' && e.dev === m.dev) || e.source === devPath || e.source === realPath && m.name === name);
    if (mount !== undefined) {
      throw fail('DISK_MOUNTED', `${devPath} is mounted on ${mount.mountPoint}${m.name === name ? '' : ` (a partition of ${diskPath})`}`,
        `unmount it first (umount ${mount.mountPoint})`);
    }
    if (swaps.includes(devPath) || (m.name === name && swaps.includes(realPath))) {
      throw fail('DISK_IN_USE', `${devPath} is in use as swap`, `swapoff ${devPath} first`);
    }
    const holders = listDir(path.join(m.sys, 'holders'));
    if (holders.length > 0) {
      throw fail('DISK_HELD', `${devPath} is held by ${holders.map((h) => `/dev/${h}`).join(', ')} (LVM, device-mapper or RAID)`,
        'deactivate what uses it first (vgchange -an, dmsetup remove, mdadm --stop)');
    }
  }
  return info;
}

/**
 * Throws when an image of `imageSize` bytes (learned from `source`) cannot fit on the disk.
 * A regular file of size 0 grows, so any size fits.
 */
export function checkImageFits(info: DiskInfo, imageSize: number | undefined, source: string): void {
  if (imageSize === undefined) return;
  if (info.kind === 'file' && info.size === 0) return;
  if (imageSize > info.size) {
    throw fail('DISK_TOO_SMALL', `the image is ${imageSize} bytes (${source}) but ${info.path} holds only ${info.size} bytes`,
      'use a larger disk or a smaller image');
  }
}
