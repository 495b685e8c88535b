// Whether a rootfs deploy regenerates the deployed tree's initramfs, or keeps the one the tarball
// brought. update-initramfs in the chroot is the slowest step of a deploy (it compresses the
// whole image again), and a Debian/Ubuntu tarball normally carries an initrd built by its kernel
// package's postinst. Regenerating only helps when something it reads differs from when the
// tarball's initrd was built; what booty itself changes does not matter to it (README, "The boot
// loader"), so the initrd is kept unless one of these holds:
//   - a kernel in /boot has no (or an empty) initrd.img of its version;
//   - MODULES=dep: the image holds only the drivers of the machine it was built on, which was the
//     tarball's build host, not this machine;
//   - something booty writes into the tree (the action's post settings, `files` above all) is an
//     input of mkinitramfs: its configuration and hooks, module options, crypttab, mdadm, LVM,
//     udev rules and link files, the keymap.
// Only initramfs-tools trees (update-initramfs) are concerned: booty regenerates no other kind.
import fs from 'node:fs';
import path from 'node:path';
import { resolveInRoot } from '../disk/root-path.ts';

export interface InitramfsDecision {
  update: boolean;
  /** why, for the log */
  reason: string;
}

/** Paths (or directory prefixes, ending in /) that mkinitramfs or its stock hooks read. */
const INITRAMFS_INPUTS = [
  '/etc/initramfs-tools/', '/usr/share/initramfs-tools/', '/etc/modprobe.d/', '/lib/modprobe.d/', '/usr/lib/modprobe.d/',
  '/etc/modules', '/lib/modules/', '/usr/lib/modules/', '/etc/crypttab', '/etc/cryptsetup-initramfs/', '/etc/mdadm/',
  '/etc/lvm/', '/etc/udev/', '/etc/default/keyboard', '/etc/console-setup/', '/etc/kernel-img.conf',
];

function isInput(p: string): boolean {
  const n = path.posix.normalize(`/${p}`);
  // udev's hook copies the .link files of /etc/systemd/network (interface names), not the
  // .network files post.network writes there
  if (n.startsWith('/etc/systemd/network/')) return n.endsWith('.link');
  return INITRAMFS_INPUTS.some((i) => (i.endsWith('/') ? n.startsWith(i) || `${n}/` === i : n === i || n.startsWith(`${i}/`)));
}

function readInRoot(root: string, p: string): string | undefined {
  try { return fs.readFileSync(resolveInRoot(root, p), 'utf8'); } catch { return undefined; }
}

function listInRoot(root: string, p: string): string[] {
  try { return fs.readdirSync(resolveInRoot(root, p)).sort(); } catch { return []; }
}

/** MODULES as mkinitramfs would see it: initramfs.conf, then conf.d/* in order, the last assignment winning. */
export function initramfsModules(root: string): string {
  let modules = 'most';
  const files = ['/etc/initramfs-tools/initramfs.conf', ...listInRoot(root, '/etc/initramfs-tools/conf.d').map((n) => `/etc/initramfs-tools/conf.d/${n}`)];
  for (const f of files) {
    for (const line of (readInRoot(root, f) ?? '').split('\n')) {
      const m = /^\s*MODULES=["']?([A-Za-z]+)["']?\s*(#.*)?$/.exec(line);
      if (m !== null) modules = m[1];
    }
  }
  return modules;
}

/**
 * kernels: the versions found in /boot (vmlinuz-<version>); written: the paths (inside the tree)
 * booty wrote into it before the boot loader step.
 */
export function decideInitramfs(root: string, kernels: string[], written: string[]): InitramfsDecision {
  for (const k of kernels) {
    const initrd = `initrd.img-${k}`;
    let size = 0;
    try { size = fs.statSync(resolveInRoot(root, `/boot/${initrd}`)).size; } catch { /* missing */ }
    if (size === 0) return { update: true, reason: `the tarball has no /boot/${initrd} for its kernel ${k}` };
  }
  const modules = initramfsModules(root);
  if (modules === 'dep') return { update: true, reason: 'MODULES=dep: the tarball\'s initrd holds the drivers of the machine it was built on' };
  const input = written.find(isInput);
  if (input !== undefined) return { update: true, reason: `${input} was written into the tree and is read by mkinitramfs` };
  return { update: false, reason: `the tarball's initrd kept (${kernels.map((k) => `initrd.img-${k}`).join(', ')}; MODULES=${modules}; nothing booty wrote is read by mkinitramfs)` };
}
