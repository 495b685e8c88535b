// Wiping a disk so nothing boots from it and no tool recognises what was there: zero the start
// (partition tables, boot loaders, LVM/RAID/filesystem signatures of the first partitions; 100
// MiB as BOOTy's wipeDevice did) and the end (the GPT backup header, md 1.0 superblocks). This is
// wipeOnError and the `wipe` action's `quick` method; the other methods are in wipe-methods.ts.
import fs from 'node:fs';
import { blockDeviceSize, discard, rereadPartitions, zeroOut } from '../sys/blockdev.ts';
import type { Logger } from '../util/log.ts';

const MiB = 1024 * 1024;

/** The byte ranges to zero on a disk of `size` bytes: [offset, length] pairs, in order, not overlapping. */
export function wipeRanges(size: number, headBytes: number, tailBytes: number): [number, number][] {
  const head = Math.min(size, headBytes);
  const tailStart = Math.max(head, size - tailBytes);
  const ranges: [number, number][] = [];
  if (head > 0) ranges.push([0, head]);
  if (size - tailStart > 0) ranges.push([tailStart, size - tailStart]);
  return ranges;
}

async function zeroRange(fd: number, offset: number, length: number): Promise<void> {
  try {
    await zeroOut(fd, offset, length);
    return;
  } catch { /* no BLKZEROOUT (or a regular file): write zeros ourselves */ }
  const chunk = Buffer.alloc(Math.min(length, 4 * MiB));
  for (let done = 0; done < length;) {
    const n = Math.min(chunk.length, length - done);
    done += fs.writeSync(fd, chunk, 0, n, offset + done);
  }
}

export interface WipeOptions {
  log: Logger;
  headBytes?: number;
  tailBytes?: number;
  /** TRIM the whole device first (best effort) */
  discardAll?: boolean;
}

export async function wipeDisk(disk: string, opts: WipeOptions): Promise<{ bytesZeroed: number; discarded: boolean }> {
  const fd = fs.openSync(disk, fs.constants.O_RDWR | fs.constants.O_EXCL);
  try {
    const st = fs.fstatSync(fd);
    const size = st.isBlockDevice() ? blockDeviceSize(fd) : st.size;
    let discarded = false;
    if (opts.discardAll === true && st.isBlockDevice()) {
      try {
        await discard(fd, 0, size);
        discarded = true;
        opts.log.info(`discarded all ${size} bytes of ${disk}`);
      } catch (e) {
        opts.log.debug(`${disk} does not support discard (${(e as Error).message}); zeroing only`);
      }
    }
    let bytesZeroed = 0;
    for (const [off, len] of wipeRanges(size, opts.headBytes ?? 100 * MiB, opts.tailBytes ?? MiB)) {
      await zeroRange(fd, off, len);
      bytesZeroed += len;
    }
    fs.fdatasyncSync(fd);
    if (st.isBlockDevice()) { try { rereadPartitions(fd); } catch { /* partitions stay until reboot */ } }
    opts.log.info(`wiped ${disk}: zeroed ${Math.round(bytesZeroed / MiB)} MiB at its start and end`);
    return { bytesZeroed, discarded };
  } finally {
    fs.closeSync(fd);
  }
}
