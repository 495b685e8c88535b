// The filesystems on a disk, and which of them is the OS root: the partitions of its table and
// the LVs of any volume group on them, recognised by their magic numbers (fs-detect.ts). Used
// after a deploy (post-deploy settings go into the root) and by a rootfs capture (the root and
// the filesystems its fstab mounts are archived).
import { isBootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import type { BlockIO } from './block-io.ts';
import { detectContent, DETECT_BYTES, type Content } from './fs-detect.ts';
import { activateVg, listLvs, vgOfPv } from './lvm.ts';
import { withMounted, type FsType } from './mounts.ts';
import { syncKernelPartitions } from './kernel-partitions.ts';
import { readPartitionTable } from './partition-table/table.ts';
import { existsInRoot } from './root-path.ts';
import type { ToolRunner } from './tools.ts';

export interface DiskFilesystem {
  /** the partition or LV device */
  device: string;
  content: Content;
  /** the LV's name and volume group when it is one */
  lv?: string;
  vg?: string;
}

/**
 * Every partition of DISK and every LV inside an LVM PV on it, with what each holds. Volume
 * groups found are activated and their names pushed to ACTIVATED: the caller deactivates them.
 * The kernel's idea of the partitions is brought in line with the table first (BLKPG), since
 * run on its own the kernel may not know them yet (or, on a host without partition parsers, at all).
 */
export async function listDiskFilesystems(disk: string, tools: ToolRunner, io: BlockIO, log: Logger, activated: string[], what = 'disk'): Promise<DiskFilesystem[]> {
  const handle = io.openDisk(disk);
  let table;
  try {
    table = readPartitionTable(handle.source());
    try {
      syncKernelPartitions(handle, table, io, log);
    } catch (e) {
      log.warn(`${what}: could not update the kernel's partitions of ${disk}: ${(e as Error).message}`);
    }
  } finally {
    handle.close();
  }
  const found: DiskFilesystem[] = [];
  for (const p of table.partitions) {
    if (p.kind === 'extended') continue;
    const device = io.partitionDevice(disk, p.number);
    if (!(await io.waitForDevice(device, 5_000))) continue;
    const content = detectContent(io.readHead(device, DETECT_BYTES));
    found.push({ device, content });
    if (content.kind !== 'lvm2-pv' || tools.find('lvm') === undefined) continue;
    try {
      const vg = await vgOfPv(tools, device);
      await activateVg(tools, vg);
      activated.push(vg);
      for (const lv of await listLvs(tools, vg)) {
        if (!(await io.waitForDevice(lv.path, 5_000))) continue;
        found.push({ device: lv.path, content: detectContent(io.readHead(lv.path, DETECT_BYTES)), lv: lv.name, vg });
      }
    } catch (e) {
      log.warn(`${what}: could not look inside LVM on ${device}: ${(e as Error).message}`);
    }
  }
  return found;
}

export interface OsRoot {
  device: string;
  fstype: FsType;
}

/**
 * Which of FILESYSTEMS holds the OS root: the ext4/XFS ones, tried root-named LVs first, then
 * largest first, until one has /etc/os-release or /etc/fstab (each mounted read-only to look).
 */
export async function findOsRoot(filesystems: readonly DiskFilesystem[], tools: ToolRunner, log: Logger): Promise<OsRoot | undefined> {
  const candidates: Array<OsRoot & { rank: number }> = [];
  for (const f of filesystems) {
    const c = f.content;
    if (c.kind !== 'ext' && c.kind !== 'xfs') continue;
    // A root-named LV wins over size.
    const rank = c.sizeBytes + (f.lv !== undefined && /root/i.test(f.lv) ? 2 ** 60 : 0);
    candidates.push({ device: f.device, fstype: c.kind === 'ext' ? 'ext4' : 'xfs', rank });
  }
  candidates.sort((a, b) => b.rank - a.rank);
  for (const c of candidates) {
    try {
      const isRoot = await withMounted(tools, c.device, c.fstype, log, async (dir) => looksLikeOsRoot(dir), { readOnly: true });
      if (isRoot) return { device: c.device, fstype: c.fstype };
    } catch (e) {
      if (isBootyError(e)) log.debug(`${c.device}: ${e.message}`);
    }
  }
  return undefined;
}

/** The candidates findOsRoot would try, for a message when none was the root. */
export function rootCandidates(filesystems: readonly DiskFilesystem[]): string[] {
  return filesystems.filter((f) => f.content.kind === 'ext' || f.content.kind === 'xfs').map((f) => f.device);
}

export function looksLikeOsRoot(dir: string): boolean {
  return existsInRoot(dir, '/etc/os-release') || existsInRoot(dir, '/etc/fstab');
}
