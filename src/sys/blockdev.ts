// Block device ioctls and fallocate(2), which Node does not expose. The data path uses them to
// size a disk, learn its sector size, make the kernel re-read the partition table after a deploy,
// and zero ranges without sending zeros through memory (BLKZEROOUT on devices, hole punching on
// files). Long operations (zeroing) run on koffi's worker threads so the event loop keeps moving.
import { check, errno, fn, koffi, sysError } from './libc.ts';

// <linux/fs.h>: _IO(0x12, n) and _IOR(0x12, 114, size_t)
export const BLKRRPART = 0x125f;
export const BLKSSZGET = 0x1268;
export const BLKDISCARD = 0x1277;
export const BLKZEROOUT = 0x127f;
export const BLKPBSZGET = 0x127b;
export const BLKGETSIZE64 = 0x80081272;

// <linux/falloc.h>
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

type IoctlU64Out = (fd: number, req: number, out: bigint[]) => number;
type IoctlIntOut = (fd: number, req: number, out: number[]) => number;
type IoctlNone = (fd: number, req: number, arg: number) => number;
type IoctlRange = ((fd: number, req: number, range: BigUint64Array) => number) & {
  async(fd: number, req: number, range: BigUint64Array, cb: (err: unknown, res: number) => void): void;
};
type Fallocate = ((fd: number, mode: number, offset: bigint, len: bigint) => number) & {
  async(fd: number, mode: number, offset: bigint, len: bigint, cb: (err: unknown, res: number) => void): void;
};

// ioctl is variadic in C; declaring one fixed prototype per argument shape is safe on x86-64 and
// arm64 for integer and pointer arguments, and lets koffi marshal each shape directly.
const ioctlU64Out = () => fn<IoctlU64Out>('int ioctl(int fd, unsigned long req, _Out_ uint64_t *out)');
const ioctlIntOut = () => fn<IoctlIntOut>('int ioctl(int fd, unsigned long req, _Out_ int *out)');
const ioctlNone = () => fn<IoctlNone>('int ioctl(int fd, unsigned long req, unsigned long arg)');
const ioctlRange = () => fn<IoctlRange>('int ioctl(int fd, unsigned long req, uint64_t *range)');
const fallocateFn = () => fn<Fallocate>('int fallocate(int fd, int mode, int64_t offset, int64_t len)');

/** Size of a block device in bytes. */
export function blockDeviceSize(fd: number): number {
  const out: bigint[] = [0n];
  check(ioctlU64Out()(fd, BLKGETSIZE64, out), 'ioctl(BLKGETSIZE64)');
  return Number(out[0]);
}

/** Logical sector size (the alignment O_DIRECT needs). */
export function logicalSectorSize(fd: number): number {
  const out = [0];
  check(ioctlIntOut()(fd, BLKSSZGET, out), 'ioctl(BLKSSZGET)');
  return out[0];
}

/** Physical sector size (the size that avoids read-modify-write inside the device). */
export function physicalSectorSize(fd: number): number {
  const out = [0];
  check(ioctlIntOut()(fd, BLKPBSZGET, out), 'ioctl(BLKPBSZGET)');
  return out[0];
}

/** Ask the kernel to re-read the partition table (fails with EBUSY if a partition is in use). */
export function rereadPartitions(fd: number): void {
  check(ioctlNone()(fd, BLKRRPART, 0), 'ioctl(BLKRRPART)');
}

function rangeCall(req: number, name: string, fd: number, offset: number, length: number): Promise<void> {
  const range = new BigUint64Array([BigInt(offset), BigInt(length)]);
  return new Promise((resolve, reject) => {
    ioctlRange().async(fd, req, range, (err, res) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      // errno of a worker-thread call is not reliable here: report the failure, callers fall back
      else if (res < 0) reject(sysError(`ioctl(${name}, ${offset}, ${length})`, errno() || 95));
      else resolve();
    });
  });
}

/** Zero [offset, offset+length) on a block device: write-zeroes offload or the kernel's own zero
 *  pages; the range reads back as zeros afterwards. Both must be logical-sector aligned. */
export function zeroOut(fd: number, offset: number, length: number): Promise<void> {
  return rangeCall(BLKZEROOUT, 'BLKZEROOUT', fd, offset, length);
}

/** Discard (TRIM) a range. Contents afterwards are device-defined: never use it for correctness. */
export function discard(fd: number, offset: number, length: number): Promise<void> {
  return rangeCall(BLKDISCARD, 'BLKDISCARD', fd, offset, length);
}

/** fallocate(2) on a worker thread, e.g. FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE on a file. */
export function fallocate(fd: number, mode: number, offset: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fallocateFn().async(fd, mode, BigInt(offset), BigInt(length), (err, res) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else if (res < 0) reject(sysError(`fallocate(${mode}, ${offset}, ${length})`, errno() || 95));
      else resolve();
    });
  });
}

/** Memory address of a buffer's first byte (to align O_DIRECT buffers). */
export function bufferAddress(buf: Uint8Array): bigint {
  return koffi().address(buf);
}
