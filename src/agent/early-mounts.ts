// Step 1: the filesystems every later step needs. The kernel starts /init on a bare rootfs:
// nothing is mounted and /dev holds at most /dev/console. Each mount is skipped when something
// is already mounted there (the agent restarted, or a wrapper mounted it), and a node devtmpfs
// did not provide is made with mknod.
import fs from 'node:fs';
import path from 'node:path';
import { makedev, mknod, S_IFCHR } from '../sys/devnodes.ts';
import { MNT_DETACH, mount, MS_NODEV, MS_NOEXEC, MS_NOSUID, umount } from '../sys/mount.ts';

export interface MountSpec { source: string; target: string; fstype: string; flags: number; data: string | null }

export const earlyMounts: MountSpec[] = [
  { source: 'devtmpfs', target: '/dev', fstype: 'devtmpfs', flags: MS_NOSUID, data: 'mode=0755' },
  { source: 'proc', target: '/proc', fstype: 'proc', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, data: null },
  { source: 'sysfs', target: '/sys', fstype: 'sysfs', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, data: null },
  { source: 'tmpfs', target: '/tmp', fstype: 'tmpfs', flags: MS_NOSUID | MS_NODEV, data: 'mode=1777' },
  { source: 'tmpfs', target: '/run', fstype: 'tmpfs', flags: MS_NOSUID | MS_NODEV, data: 'mode=0755' },
  { source: 'devpts', target: '/dev/pts', fstype: 'devpts', flags: MS_NOSUID | MS_NOEXEC, data: 'gid=5,mode=0620,ptmxmode=0666' },
];

export interface NodeSpec { path: string; major: number; minor: number; mode: number }

// The character devices a shell, lvm, mkfs and Node's crypto fallbacks expect.
export const requiredNodes: NodeSpec[] = [
  { path: '/dev/console', major: 5, minor: 1, mode: 0o600 },
  { path: '/dev/null', major: 1, minor: 3, mode: 0o666 },
  { path: '/dev/zero', major: 1, minor: 5, mode: 0o666 },
  { path: '/dev/random', major: 1, minor: 8, mode: 0o666 },
  { path: '/dev/urandom', major: 1, minor: 9, mode: 0o666 },
  { path: '/dev/tty', major: 5, minor: 0, mode: 0o666 },
];

const requiredLinks: [string, string][] = [
  ['/dev/fd', '/proc/self/fd'],
  ['/dev/stdin', '/proc/self/fd/0'],
  ['/dev/stdout', '/proc/self/fd/1'],
  ['/dev/stderr', '/proc/self/fd/2'],
];

/** A directory is a mount point when it lies on another device than its parent. */
export function isMountPoint(dir: string): boolean {
  try {
    return fs.statSync(dir).dev !== fs.statSync(path.dirname(dir)).dev;
  } catch {
    return false;
  }
}

export interface EarlyResult {
  /** targets this agent mounted, in mount order (unmounted in reverse at the end) */
  mounted: string[];
  messages: string[];
  problems: string[];
}

export function mountEarly(specs: MountSpec[] = earlyMounts): EarlyResult {
  const r: EarlyResult = { mounted: [], messages: [], problems: [] };
  for (const m of specs) {
    try {
      fs.mkdirSync(m.target, { recursive: true });
      if (isMountPoint(m.target)) {
        r.messages.push(`${m.target} is already mounted`);
        continue;
      }
      mount(m.source, m.target, m.fstype, m.flags, m.data);
      r.mounted.push(m.target);
    } catch (e) {
      r.problems.push(`cannot mount ${m.fstype} on ${m.target}: ${(e as Error).message}`);
    }
  }
  if (r.mounted.length > 0) r.messages.push(`mounted ${r.mounted.join(', ')}`);

  const made: string[] = [];
  const oldMask = process.umask(0);
  try {
    for (const n of requiredNodes) {
      if (fs.existsSync(n.path)) continue;
      try {
        mknod(n.path, S_IFCHR | n.mode, makedev(n.major, n.minor));
        made.push(n.path);
      } catch (e) {
        r.problems.push(`cannot create ${n.path}: ${(e as Error).message}`);
      }
    }
  } finally {
    process.umask(oldMask);
  }
  for (const [link, target] of requiredLinks) {
    try { fs.lstatSync(link); } catch { try { fs.symlinkSync(target, link); } catch { /* optional */ } }
  }
  if (made.length > 0) r.messages.push(`created ${made.join(', ')} with mknod`);
  return r;
}

/** Unmounts what mountEarly mounted, last first; a busy one is detached (lazy unmount). */
export function unmountEarly(mounted: string[]): string[] {
  const problems: string[] = [];
  for (const target of [...mounted].reverse()) {
    try {
      umount(target);
    } catch {
      try { umount(target, MNT_DETACH); } catch (e) { problems.push(`cannot unmount ${target}: ${(e as Error).message}`); }
    }
  }
  return problems;
}
