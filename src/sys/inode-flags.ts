// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (what chattr uses), which Node does not expose. efivarfs
// marks most variable files immutable so a stray `rm` cannot brick a machine: booty clears the
// flag on exactly the file it is about to rewrite or delete.
import { check, fn } from './libc.ts';

const FS_IOC_GETFLAGS = 0x80086601; // _IOR('f', 1, long); the kernel copies an int
const FS_IOC_SETFLAGS = 0x40086602; // _IOW('f', 2, long)
export const FS_IMMUTABLE_FL = 0x00000010;

type IoctlIntOut = (fd: number, req: number, out: number[]) => number;
type IoctlIntIn = (fd: number, req: number, inp: number[]) => number;
const ioctlIntOut = () => fn<IoctlIntOut>('int ioctl(int fd, unsigned long req, _Out_ int *out)');
const ioctlIntIn = () => fn<IoctlIntIn>('int ioctl(int fd, unsigned long req, int *inp)');

export function getInodeFlags(fd: number, what: string): number {
  const out = [0];
  check(ioctlIntOut()(fd, FS_IOC_GETFLAGS, out), `ioctl(${what}, FS_IOC_GETFLAGS)`);
  return out[0];
}

export function setInodeFlags(fd: number, flags: number, what: string): void {
  check(ioctlIntIn()(fd, FS_IOC_SETFLAGS, [flags]), `ioctl(${what}, FS_IOC_SETFLAGS)`);
}
