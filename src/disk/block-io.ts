// The grow step's view of block devices: open a disk, read its partition table sectors, apply
// writes, tell the kernel about partitions, find partition device nodes, read the first bytes of
// a partition or LV. An interface so unit tests can run the whole grow logic over an in-memory
// disk; the real implementation uses fs + sysfs + the ioctls in src/sys/blkpg.ts.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fdSectorSource, applyWritesToFd } from './partition-table/fd-source.ts';
import type { SectorSource, Write } from './partition-table/types.ts';
import { kernelName, partitionPath, sysfsPartitionName } from './partition-names.ts';
// libc.ts loads koffi on the first call only, so importing this never loads the native module.
import * as blkpg from '../sys/blkpg.ts';

export interface KernelPartition {
  /** kernel name, e.g. nvme0n1p2 */
  name: string;
  /** in bytes */
  start: number;
  size: number;
}

export interface DiskHandle {
  readonly path: string;
  readonly sizeBytes: number;
  readonly sectorSize: number;
  source(): SectorSource;
  apply(writes: Write[]): void;
  /** BLKRRPART: 'busy' when a partition is in use, 'unsupported' for a non-block device */
  rereadPartitions(): 'ok' | 'busy' | 'unsupported';
  addPartition(number: number, startBytes: number, sizeBytes: number): void;
  resizePartition(number: number, startBytes: number, sizeBytes: number): void;
  close(): void;
}

export interface BlockIO {
  openDisk(disk: string): DiskHandle;
  /** what the kernel currently knows about partition `number` of `disk` */
  kernelPartition(disk: string, number: number): KernelPartition | undefined;
  /** the device node of partition `number`, once the kernel knows it */
  partitionDevice(disk: string, number: number): string;
  /** the first `length` bytes of a device (fewer if it is smaller) */
  readHead(device: string, length: number): Buffer;
  /** wait until a device node exists; false on timeout */
  waitForDevice(device: string, timeoutMs: number): Promise<boolean>;
  sleep(ms: number): Promise<void>;
}

/** The real thing: block devices through fs, sysfs and BLKRRPART/BLKPG. */
export function realBlockIO(sysBlock = '/sys/class/block'): BlockIO {
  return {
    openDisk(disk) {
      const fd = fs.openSync(disk, fs.constants.O_RDWR);
      try {
        const st = fs.fstatSync(fd);
        return st.isBlockDevice() ? blockDeviceHandle(disk, fd) : imageFileHandle(disk, fd, st.size);
      } catch (e) {
        fs.closeSync(fd);
        throw e;
      }
    },
    kernelPartition(disk, number) {
      const diskName = kernelName(disk);
      const name = sysfsPartitionName(diskName, number, sysBlock);
      if (name === undefined) return undefined;
      const read = (f: string) => Number(fs.readFileSync(path.join(sysBlock, name, f), 'utf8').trim());
      // sysfs counts in 512-byte units whatever the logical sector size.
      return { name, start: read('start') * 512, size: read('size') * 512 };
    },
    partitionDevice(disk, number) {
      const name = sysfsPartitionName(kernelName(disk), number, sysBlock);
      return name === undefined ? partitionPath(disk, number) : `/dev/${name}`;
    },
    readHead(device, length) {
      const fd = fs.openSync(device, 'r');
      try {
        const buf = Buffer.alloc(length);
        let done = 0;
        while (done < length) {
          const n = fs.readSync(fd, buf, done, length - done, done);
          if (n === 0) break;
          done += n;
        }
        return buf.subarray(0, done);
      } finally {
        fs.closeSync(fd);
      }
    },
    async waitForDevice(device, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (true) {
        if (fs.existsSync(device)) return true;
        if (Date.now() >= deadline) return false;
        await sleep(50);
      }
    },
    sleep: (ms) => sleep(ms).then(() => undefined),
  };
}

function blockDeviceHandle(disk: string, fd: number): DiskHandle {
  const sys = blkpg;
  const sizeBytes = sys.deviceSizeBytes(fd, disk);
  const sectorSize = sys.logicalSectorSize(fd, disk);
  return {
    path: disk, sizeBytes, sectorSize,
    source: () => fdSectorSource(fd, sizeBytes, sectorSize),
    apply: (writes) => applyWritesToFd(fd, writes),
    rereadPartitions: () => sys.rereadPartitionTable(fd, disk),
    addPartition: (n, start, size) => sys.addPartition(fd, n, start, size, disk),
    resizePartition: (n, start, size) => sys.resizePartition(fd, n, start, size, disk),
    close: () => fs.closeSync(fd),
  };
}

/** A disk image file: same codec, no kernel to tell. */
function imageFileHandle(disk: string, fd: number, sizeBytes: number): DiskHandle {
  return {
    path: disk, sizeBytes, sectorSize: 512,
    source: () => fdSectorSource(fd, sizeBytes, 512),
    apply: (writes) => applyWritesToFd(fd, writes),
    rereadPartitions: () => 'unsupported',
    addPartition: () => { throw new Error(`${disk} is a file, not a block device`); },
    resizePartition: () => { throw new Error(`${disk} is a file, not a block device`); },
    close: () => fs.closeSync(fd),
  };
}
