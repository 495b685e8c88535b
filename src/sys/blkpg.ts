// Block device ioctls the grow step needs: the device's size and logical sector size, "re-read
// the partition table" (BLKRRPART), and BLKPG to add or resize one partition in the kernel's view.
// BLKPG matters twice: BLKRRPART fails with EBUSY while any partition of the disk is open, and
// kernels built without partition-table parsers (BLKRRPART then drops every partition) still
// learn the partitions booty read itself.
import { check, errno, fn, koffi } from './libc.ts';

const BLKRRPART = 0x125f; // _IO(0x12, 95)
const BLKSSZGET = 0x1268; // _IO(0x12, 104)
const BLKPG = 0x1269; // _IO(0x12, 105)
const BLKGETSIZE64 = 0x80081272; // _IOR(0x12, 114, size_t)
const BLKPG_ADD_PARTITION = 1;
const BLKPG_RESIZE_PARTITION = 3;
const EBUSY = 16;

type Ioctl = (fd: number, request: number, ...typedArgs: unknown[]) => number;
const ioctl = () => fn<Ioctl>('int ioctl(int fd, unsigned long request, ...)');

let types: { part: unknown; arg: unknown; partSize: number } | undefined;
function blkpgTypes(): { part: unknown; arg: unknown; partSize: number } {
  if (types === undefined) {
    const k = koffi();
    // struct blkpg_partition and struct blkpg_ioctl_arg from <linux/blkpg.h>
    const part = k.struct('booty_blkpg_partition', {
      start: 'int64_t', length: 'int64_t', pno: 'int', devname: 'char[64]', volname: 'char[64]',
    });
    const arg = k.struct('booty_blkpg_ioctl_arg', { op: 'int', flags: 'int', datalen: 'int', data: k.pointer(part) });
    types = { part, arg: k.pointer(arg), partSize: k.sizeof(part) };
  }
  return types;
}

/** Size of a block device in bytes. */
export function deviceSizeBytes(fd: number, what: string): number {
  const out = Buffer.alloc(8);
  check(ioctl()(fd, BLKGETSIZE64, 'void *', out), `ioctl(${what}, BLKGETSIZE64)`);
  return Number(out.readBigUInt64LE());
}

/** Logical sector size of a block device (512 or 4096). */
export function logicalSectorSize(fd: number, what: string): number {
  const out = Buffer.alloc(4);
  check(ioctl()(fd, BLKSSZGET, 'void *', out), `ioctl(${what}, BLKSSZGET)`);
  return out.readInt32LE();
}

/** BLKRRPART: 'busy' when a partition is in use (EBUSY); other errors throw. */
export function rereadPartitionTable(fd: number, what: string): 'ok' | 'busy' {
  const r = ioctl()(fd, BLKRRPART);
  if (r === 0) return 'ok';
  const e = errno();
  if (e === EBUSY) return 'busy';
  check(-1, `ioctl(${what}, BLKRRPART)`);
  return 'ok';
}

function blkpg(fd: number, op: number, pno: number, startBytes: number, lengthBytes: number, what: string): void {
  const t = blkpgTypes();
  const r = ioctl()(fd, BLKPG, t.arg, {
    op, flags: 0, datalen: t.partSize,
    data: { start: BigInt(startBytes), length: BigInt(lengthBytes), pno, devname: '', volname: '' },
  });
  check(r, `ioctl(${what}, BLKPG ${op === BLKPG_ADD_PARTITION ? 'add' : 'resize'} partition ${pno})`);
}

export function addPartition(fd: number, pno: number, startBytes: number, lengthBytes: number, what: string): void {
  blkpg(fd, BLKPG_ADD_PARTITION, pno, startBytes, lengthBytes, what);
}

export function resizePartition(fd: number, pno: number, startBytes: number, lengthBytes: number, what: string): void {
  blkpg(fd, BLKPG_RESIZE_PARTITION, pno, startBytes, lengthBytes, what);
}
