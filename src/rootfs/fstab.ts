// /etc/fstab for the deployed tree, from the layout booty just made: every filesystem by the UUID
// booty gave it (a disk renamed from sda to nvme0n1 still boots), in mount order.
import type { MadePartition } from './prepare-disk.ts';

const OPTIONS: Record<string, { options: string; pass: number }> = {
  ext4: { options: 'errors=remount-ro', pass: 1 },
  xfs: { options: 'defaults', pass: 2 },
  // the ESP: readable by root only, as Debian's installer mounts it
  vfat: { options: 'umask=0077', pass: 2 },
};

export function renderFstab(parts: MadePartition[]): string {
  const lines = ['# /etc/fstab: written by booty from the deploy\'s layout (filesystems by UUID)', '# <file system> <mount point> <type> <options> <dump> <pass>'];
  const mounted = parts.filter((p) => p.mountpoint !== undefined && p.uuid !== undefined && p.fs !== undefined && p.fs !== 'swap')
    .sort((a, b) => depth(a.mountpoint!) - depth(b.mountpoint!));
  for (const p of mounted) {
    const o = OPTIONS[p.fs!];
    lines.push(`UUID=${p.uuid} ${p.mountpoint} ${p.fs} ${o.options} 0 ${p.mountpoint === '/' ? 1 : o.pass}`);
  }
  for (const p of parts) if (p.fs === 'swap' && p.uuid !== undefined) lines.push(`UUID=${p.uuid} none swap sw 0 0`);
  return lines.join('\n') + '\n';
}

/** "/" 0, "/boot" 1, "/boot/efi" 2: parents are mounted before what they hold. */
export function depth(mountpoint: string): number {
  return mountpoint === '/' ? 0 : mountpoint.split('/').length - 1;
}
