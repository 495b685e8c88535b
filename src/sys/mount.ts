// mount(2) and umount2(2). The agent mounts the kernel's virtual filesystems (devtmpfs, proc,
// sysfs, tmpfs, devpts) itself: nothing else in an initramfs would.
import { check, fn } from './libc.ts';

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_RELATIME = 0x200000;

/** umount2 flag: detach now, finish when the last user goes (for /dev with our console open). */
export const MNT_DETACH = 0x2;

type MountFn = (src: string, target: string, fstype: string, flags: number, data: string | null) => number;
type Umount2Fn = (target: string, flags: number) => number;

export function mount(source: string, target: string, fstype: string, flags = 0, data: string | null = null): void {
  const f = fn<MountFn>('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)');
  check(f(source, target, fstype, flags, data), `mount(${target}, ${fstype})`);
}

export function umount(target: string, flags = 0): void {
  const f = fn<Umount2Fn>('int umount2(const char *target, int flags)');
  check(f(target, flags), `umount(${target})`);
}
