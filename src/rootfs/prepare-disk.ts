// The disk side of a rootfs deploy, before the tree arrives: the new partition table (sfdisk,
// checked against booty's own reader), the kernel told about each partition (BLKRRPART, and
// BLKPG where the kernel has no parser for the table: loop devices, minimal kernels), and a
// filesystem on each partition with a UUID booty chose, so fstab can be written without asking
// blkid afterwards.
import { randomBytes, randomUUID } from 'node:crypto';
import { BootyError, isBootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import type { BlockIO } from '../disk/block-io.ts';
import { rereadPartitions, syncKernelPartitions } from '../disk/kernel-partitions.ts';
import { readPartitionTable } from '../disk/partition-table/table.ts';
import type { ToolRunner } from '../disk/tools.ts';
import { partitionTypeOf, sfdiskScript, type LayoutPlan, type PlacedPartition } from './layout-plan.ts';

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
  log.info(`rootfs: partitioning ${disk} (${plan.table}): ${plan.partitions.map((p) => `${p.number}: ${p.role}${p.fs === undefined ? '' : ` ${p.fs}`}${p.mountpoint === undefined ? '' : ` ${p.mountpoint}`} ${Math.round(p.bytes / (1 << 20))} MiB`).join(', ')}`);
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
    const want = plan.partitions.map((p) => `${p.number}:${p.start}-${p.start + p.sectors - 1}:${partitionTypeOf(plan.table, p.role)}`).join(' ');
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
