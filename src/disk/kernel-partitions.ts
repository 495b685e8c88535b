// Making the kernel's idea of a disk's partitions match the table on it. BLKRRPART is the usual
// way, but it is refused (EBUSY) while any partition is open, and a kernel built without the
// MBR/GPT parsers drops every partition on it; BLKPG adds or resizes single partitions in both
// cases, from the table booty read itself.
import { BootyError, isBootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import type { BlockIO, DiskHandle } from './block-io.ts';
import { growError, type PartitionTable } from './partition-table/types.ts';

const BUSY_RETRIES = 8;

/** BLKRRPART, retried while the disk is busy (something still has a partition open). */
export async function rereadPartitions(disk: DiskHandle, io: BlockIO, log: Logger): Promise<'ok' | 'busy' | 'unsupported'> {
  for (let i = 0; ; i++) {
    let r: 'ok' | 'busy' | 'unsupported';
    try {
      r = disk.rereadPartitions();
    } catch (e) {
      throw new BootyError({
        stage: 'grow', code: 'kernel-partitions', cause: e,
        message: `cannot make the kernel re-read the partition table of ${disk.path}: ${(e as Error).message}`,
        hint: 'a loop device needs partition scanning (losetup -P); the image itself is written',
      });
    }
    if (r !== 'busy' || i >= BUSY_RETRIES) {
      if (r === 'busy') log.info(`grow: ${disk.path} stays busy; updating the kernel's partitions one by one (BLKPG)`);
      return r;
    }
    await io.sleep(100 * (i + 1));
  }
}

/**
 * Make the kernel's partitions match the table: BLKRRPART may have been refused (busy), or the
 * kernel may lack a parser for the table; BLKPG adds or resizes partitions either way.
 */
export function syncKernelPartitions(disk: DiskHandle, table: PartitionTable, io: BlockIO, log: Logger): void {
  const ss = table.sectorSize;
  for (const p of table.partitions) {
    if (p.kind === 'extended') continue; // the kernel's 1 KiB stub of it serves no one here
    const start = p.start * ss;
    const size = (p.end - p.start + 1) * ss;
    const k = io.kernelPartition(disk.path, p.number);
    try {
      if (k === undefined) {
        log.debug(`grow: kernel lacks partition ${p.number}; adding it (BLKPG)`);
        disk.addPartition(p.number, start, size);
      } else if (k.start !== start) {
        throw growError('kernel-mismatch', `the kernel sees partition ${p.number} of ${disk.path} at byte ${k.start}, the table at byte ${start}`,
          'reboot so the kernel reads the new table; the disk itself is consistent');
      } else if (k.size !== size) {
        log.debug(`grow: resizing the kernel's partition ${p.number} to ${size} bytes (BLKPG)`);
        disk.resizePartition(p.number, start, size);
      }
    } catch (e) {
      if (isBootyError(e)) throw e;
      throw new BootyError({
        stage: 'grow', code: 'kernel-partitions', cause: e,
        message: `cannot tell the kernel about partition ${p.number} of ${disk.path}: ${(e as Error).message}`,
        hint: 'the partition table on disk is grown; a reboot makes the kernel see it',
      });
    }
  }
}
