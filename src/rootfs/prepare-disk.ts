// The disk side of a rootfs deploy, before the tree arrives: the new partition table (sfdisk,
// checked against booty's own reader), the kernel told about each partition (BLKRRPART, and
// BLKPG where the kernel has no parser for the table: loop devices, minimal kernels), and a
// filesystem on each partition with a UUID booty chose, so fstab can be written without asking
// blkid afterwards.
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { BootyError, isBootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import type { BlockIO } from '../disk/block-io.ts';
import { rereadPartitions, syncKernelPartitions } from '../disk/kernel-partitions.ts';
import { readPartitionTable } from '../disk/partition-table/table.ts';
import type { ToolRunner } from '../disk/tools.ts';
import { partitionTypeOf, sfdiskScript, type LayoutPlan, type PlacedPartition } from './layout-plan.ts';
import type { RootfsLayout } from '../config/rootfs-layout.ts';

const MKFS: Record<string, string> = { ext4: 'mkfs.ext4', xfs: 'mkfs.xfs', vfat: 'mkfs.vfat', swap: 'mkswap' };
const KERNEL_FS: Record<string, string> = { ext4: 'ext4', xfs: 'xfs', vfat: 'vfat' };

/**
 * Before the disk is touched: every tool the layout needs is there, and the kernel can mount
 * every filesystem it names (listed in /proc/filesystems, or its module is on disk for mount's
 * request_module). A missing piece is refused here, with the disk as it was, not after
 * partitioning.
 */
export function checkCanMake(layout: RootfsLayout, tools: ToolRunner, procFilesystems = '/proc/filesystems'): void {
  const missing = (what: string, hint: string) => new BootyError({ stage: 'preflight', code: 'TOOL_MISSING', diskState: 'untouched',
    message: `rootfs: ${what}`, hint });
  for (const tool of ['sfdisk', 'wipefs', 'mount', 'umount']) {
    if (tools.find(tool) === undefined) throw missing(`${tool} is not on PATH`, 'install util-linux (the initramfs ships it)');
  }
  let known: string[] | undefined;
  try { known = fs.readFileSync(procFilesystems, 'utf8').split('\n').map((l) => l.split('\t').pop()!.trim()); } catch { known = undefined; }
  for (const fsType of new Set(layout.partitions.flatMap((p) => (p.fs === undefined ? [] : [p.fs])))) {
    if (tools.find(MKFS[fsType]) === undefined) {
      throw missing(`${MKFS[fsType]} is not on PATH (the layout has ${fsType})`, `install ${fsType === 'vfat' ? 'dosfstools' : fsType === 'xfs' ? 'xfsprogs' : fsType === 'ext4' ? 'e2fsprogs' : 'util-linux'}`);
    }
    const kfs = KERNEL_FS[fsType];
    if (kfs === undefined || known === undefined || known.includes(kfs) || moduleOnDisk(kfs)) continue;
    throw missing(`this kernel cannot mount ${fsType} (not in ${procFilesystems}, and no ${kfs} module under /lib/modules/${os.release()})`,
      `load the ${kfs} module, or use a layout without ${fsType}`);
  }
}

function moduleOnDisk(name: string): boolean {
  try {
    return fs.readFileSync(`/lib/modules/${os.release()}/modules.dep`, 'utf8').split('\n').some((l) => new RegExp(`/${name}\\.ko(\\.[a-z]+)?:`).test(l));
  } catch { return false; }
}

export interface MadePartition extends PlacedPartition {
  /** its device node, e.g. /dev/sda3, /dev/nvme0n1p3, /dev/loop7p3 */
  device: string;
  /** the filesystem's UUID as fstab and blkid spell it (vfat: XXXX-XXXX); undefined: no fs */
  uuid?: string;
}

function prepareError(code: string, message: string, cause?: unknown): BootyError {
  return new BootyError({ stage: 'write', code, message, cause, diskState: 'partially-written',
    hint: 'the disk has a new partition table but no deployed system; check the disk (dmesg), then deploy again' });
}

/** Write the plan's table, check it, and make the kernel show each partition. */
export async function partitionDisk(disk: string, plan: LayoutPlan, tools: ToolRunner, io: BlockIO, log: Logger): Promise<MadePartition[]> {
  const script = sfdiskScript(plan);
  log.info(`rootfs: partitioning ${disk} (${plan.table}): ${plan.partitions.map((p) => `${p.number}: ${p.type}${p.fs === undefined ? '' : ` ${p.fs}`}${p.mountpoint === undefined ? '' : ` ${p.mountpoint}`} ${Math.round(p.bytes / (1 << 20))} MiB`).join(', ')}`);
  // --wipe always: old signatures (a filesystem or RAID magic, an old GPT) go, so nothing stale is
  // found later; the kernel is told by booty below, which also covers kernels without parsers.
  await tools.run('sfdisk', ['--quiet', '--wipe', 'always', '--wipe-partitions', 'always', '--no-reread', '--no-tell-kernel', disk],
    { input: script, stage: 'write' }).catch((e: unknown) => {
    throw new BootyError({ stage: 'write', code: 'PARTITION_FAILED', cause: e, diskState: 'unknown',
      message: `rootfs: writing the partition table failed: ${(e as Error).message}`, hint: 'check the disk (dmesg), then deploy again' });
  });
  const handle = io.openDisk(disk);
  try {
    const table = readPartitionTable(handle.source());
    const want = plan.partitions.map((p) => `${p.number}:${p.start}-${p.start + p.sectors - 1}:${partitionTypeOf(plan.table, p.type)}`).join(' ');
    const got = table.partitions.map((p) => `${p.number}:${p.start}-${p.end}:${p.type}`).join(' ');
    if (table.kind !== (plan.table === 'gpt' ? 'gpt' : 'mbr') || want.toUpperCase() !== got.toUpperCase()) {
      throw prepareError('PARTITION_MISMATCH', `rootfs: the table sfdisk wrote (${table.kind}: ${got}) is not the one planned (${plan.table}: ${want})`);
    }
    const reread = await rereadPartitions(handle, io, log);
    if (reread === 'unsupported') throw prepareError('NOT_A_BLOCK_DEVICE', `rootfs: ${disk} is not a block device; a rootfs deploy needs one (attach a file with losetup -P)`);
    syncKernelPartitions(handle, table, io, log);
  } catch (e) {
    if (isBootyError(e) && e.code !== 'kernel-partitions') throw e;
    throw prepareError('KERNEL_PARTITIONS', `rootfs: the kernel could not be told about the new partitions of ${disk}: ${(e as Error).message}`, e);
  } finally {
    handle.close();
  }
  const made: MadePartition[] = [];
  for (const p of plan.partitions) {
    const device = io.partitionDevice(disk, p.number);
    if (!(await io.waitForDevice(device, 10_000))) {
      throw prepareError('NO_DEVICE_NODE', `rootfs: partition device ${device} did not appear within 10 s after the kernel was told about it`);
    }
    made.push({ ...p, device });
  }
  return made;
}

/** A filesystem (or swap signature) on each partition that has one, with a fresh UUID. */
export async function makeFilesystems(parts: MadePartition[], tools: ToolRunner, log: Logger): Promise<void> {
  for (const p of parts) {
    if (p.fs === undefined) continue;
    const label = p.label;
    let tool: string;
    let args: string[];
    switch (p.fs) {
      case 'ext4': {
        p.uuid = randomUUID();
        tool = 'mkfs.ext4';
        args = ['-F', '-q', '-U', p.uuid, ...(label === undefined ? [] : ['-L', label]), p.device];
        break;
      }
      case 'xfs': {
        p.uuid = randomUUID();
        tool = 'mkfs.xfs';
        args = ['-f', '-q', '-m', `uuid=${p.uuid}`, ...(label === undefined ? [] : ['-L', label]), p.device];
        break;
      }
      case 'vfat': {
        const id = randomBytes(4).toString('hex').toUpperCase();
        p.uuid = `${id.slice(0, 4)}-${id.slice(4)}`;
        tool = 'mkfs.vfat';
        args = ['-F', '32', '-i', id, ...(label === undefined ? [] : ['-n', label.toUpperCase()]), p.device];
        break;
      }
      case 'swap': {
        p.uuid = randomUUID();
        tool = 'mkswap';
        args = ['-U', p.uuid, ...(label === undefined ? [] : ['-L', label]), p.device];
        break;
      }
    }
    log.info(`rootfs: ${tool} on ${p.device} (UUID ${p.uuid})`);
    await tools.run(tool, args, { stage: 'write', timeoutMs: 10 * 60_000 }).catch((e: unknown) => {
      throw prepareError('MKFS_FAILED', `rootfs: making ${p.fs} on ${p.device} failed: ${(e as Error).message}`, e);
    });
  }
}
