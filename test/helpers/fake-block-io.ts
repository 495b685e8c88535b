// A BlockIO over a disk image file for unit tests of the grow logic: the partition table is real
// (read and written in the file), the kernel's view of partitions is simulated (BLKRRPART, busy
// disks, kernels without partition parsers, BLKPG add/resize), and extra devices (LVs) are
// served from buffers.
import fs from 'node:fs';
import type { BlockIO, DiskHandle, KernelPartition } from '../../src/disk/block-io.ts';
import { applyWritesToFd, fdSectorSource } from '../../src/disk/partition-table/fd-source.ts';
import { readPartitionTable } from '../../src/disk/partition-table/table.ts';
import { partitionPath } from '../../src/disk/partition-names.ts';

export class FakeBlockIO implements BlockIO {
  /** the kernel's partitions: number -> bytes */
  kernel = new Map<number, { start: number; size: number }>();
  /** BLKRRPART answers EBUSY */
  busy = false;
  /** BLKRRPART finds no partitions (a kernel without MBR/GPT parsers) */
  parserless = false;
  /** what happened, in order: "reread", "add 2", "resize 2 <bytes>", "sleep 100" */
  events: string[] = [];
  /** other devices (LVs): path -> first bytes */
  devices = new Map<string, Buffer>();
  readonly file: string;
  readonly diskPath: string;

  constructor(file: string, diskPath = '/dev/vda') {
    this.file = file;
    this.diskPath = diskPath;
  }

  /** the kernel knows the partitions the file's table has now */
  scan(): void {
    const fd = fs.openSync(this.file, 'r');
    try {
      const t = readPartitionTable(fdSectorSource(fd, fs.fstatSync(fd).size, 512));
      this.kernel.clear();
      for (const p of t.partitions) this.kernel.set(p.number, { start: p.start * 512, size: (p.end - p.start + 1) * 512 });
    } finally {
      fs.closeSync(fd);
    }
  }

  openDisk(disk: string): DiskHandle {
    if (disk !== this.diskPath) throw new Error(`ENOENT: no such device ${disk}`);
    const fd = fs.openSync(this.file, 'r+');
    const sizeBytes = fs.fstatSync(fd).size;
    return {
      path: disk, sizeBytes, sectorSize: 512,
      source: () => fdSectorSource(fd, sizeBytes, 512),
      apply: (w) => { this.events.push(`write ${w.length}`); applyWritesToFd(fd, w); },
      rereadPartitions: () => {
        this.events.push('reread');
        if (this.busy) return 'busy';
        if (this.parserless) this.kernel.clear();
        else this.scan();
        return 'ok';
      },
      addPartition: (n, start, size) => { this.events.push(`add ${n}`); this.kernel.set(n, { start, size }); },
      resizePartition: (n, start, size) => {
        this.events.push(`resize ${n} ${size}`);
        const k = this.kernel.get(n);
        if (k === undefined || k.start !== start) throw new Error('ENXIO');
        k.size = size;
      },
      close: () => fs.closeSync(fd),
    };
  }

  kernelPartition(disk: string, number: number): KernelPartition | undefined {
    const k = this.kernel.get(number);
    return k === undefined ? undefined : { name: partitionPath(disk, number).slice(5), ...k };
  }

  partitionDevice(disk: string, number: number): string {
    return partitionPath(disk, number);
  }

  private partitionOf(device: string): { start: number; size: number } | undefined {
    for (const [n, k] of this.kernel) if (partitionPath(this.diskPath, n) === device) return k;
    return undefined;
  }

  readHead(device: string, length: number): Buffer {
    const extra = this.devices.get(device);
    if (extra !== undefined) return extra.subarray(0, length);
    const k = this.partitionOf(device);
    if (k === undefined) throw new Error(`ENOENT: ${device}`);
    const buf = Buffer.alloc(Math.min(length, k.size));
    const fd = fs.openSync(this.file, 'r');
    try { fs.readSync(fd, buf, 0, buf.length, k.start); } finally { fs.closeSync(fd); }
    return buf;
  }

  async waitForDevice(device: string): Promise<boolean> {
    return this.devices.has(device) || this.partitionOf(device) !== undefined;
  }

  async sleep(ms: number): Promise<void> {
    this.events.push(`sleep ${ms}`);
  }

  /** write bytes into the disk image at a byte offset (e.g. a superblock into a partition) */
  poke(offset: number, data: Buffer): void {
    const fd = fs.openSync(this.file, 'r+');
    try { fs.writeSync(fd, data, 0, data.length, offset); } finally { fs.closeSync(fd); }
  }
}

/** The first bytes of an ext4 filesystem of `blocks` 4 KiB blocks (just enough for detection). */
export function extHead(blocks: number): Buffer {
  const b = Buffer.alloc(4096);
  b.writeUInt32LE(blocks, 1024 + 4);
  b.writeUInt32LE(2, 1024 + 24); // 1024 << 2 = 4096
  b.writeUInt16LE(0xef53, 1024 + 56);
  return b;
}

export function xfsHead(blocks: number): Buffer {
  const b = Buffer.alloc(4096);
  b.write('XFSB', 0, 'latin1');
  b.writeUInt32BE(4096, 4);
  b.writeBigUInt64BE(BigInt(blocks), 8);
  return b;
}

export function lvmPvHead(): Buffer {
  const b = Buffer.alloc(4096);
  b.write('LABELONE', 512, 'latin1');
  b.write('LVM2 001', 512 + 24, 'latin1');
  return b;
}
