// mknod(2): device nodes the agent needs even when devtmpfs lacks them (or /dev is a plain
// directory because devtmpfs could not be mounted).
import { check, cString, fn, shown } from './libc.ts';

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

/** glibc's makedev(): the 64-bit dev_t layout of Linux (12+20 bit major, 8+24 bit minor). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

type MknodFn = (path: Buffer, mode: number, dev: bigint) => number;

export function mknod(path: string | Buffer, mode: number, dev: bigint): void {
  const f = fn<MknodFn>('int mknod(const char *path, uint32_t mode, uint64_t dev)');
  check(f(cString(path), mode, dev), `mknod(${shown(path)})`);
}

export const S_IFIFO = 0o010000;

/** mkfifo(3) is mknod(2) with S_IFIFO and no device number. */
export function mkfifo(path: string | Buffer, mode: number): void {
  mknod(path, S_IFIFO | (mode & 0o7777), 0n);
}
