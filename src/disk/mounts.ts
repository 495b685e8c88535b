// Mounting the deployed OS for the grow and post-deploy steps, always paired with the unmount in
// a finally, so an error never leaves the disk mounted when the agent reboots. mount(8) is run
// through the ToolRunner (busybox mount in the initramfs) so these steps stay testable.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../util/log.ts';
import { resolveInRoot } from './root-path.ts';
import type { ToolRunner } from './tools.ts';

export type FsType = 'ext4' | 'xfs';

async function umountQuietly(tools: ToolRunner, dir: string, log: Logger): Promise<void> {
  try {
    await tools.run('umount', [dir]);
  } catch (first) {
    // A tool that forked a daemon (rare) can hold the mount: detach it lazily rather than
    // leaving the disk mounted across the reboot; the kernel finishes the unmount.
    log.warn(`umount ${dir} failed (${first instanceof Error ? first.message : String(first)}); detaching lazily`);
    await tools.run('umount', ['-l', dir]).catch(() => undefined);
  }
}

/** Mount `device` at a fresh temporary directory, run fn, unmount and remove the directory. */
export async function withMounted<T>(
  tools: ToolRunner, device: string, fstype: FsType, log: Logger, fn: (dir: string) => Promise<T>,
  opts: { readOnly?: boolean } = {},
): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-root-'));
  try {
    // read-only means the disk is not written at all: a dirty journal is not replayed either
    const ro = fstype === 'ext4' ? 'ro,noload' : 'ro,norecovery';
    const args = ['-t', fstype, ...(opts.readOnly ? ['-o', ro] : []), device, dir];
    await tools.run('mount', args);
    log.debug(`mounted ${device} (${fstype}) at ${dir}`);
    try {
      return await fn(dir);
    } finally {
      await umountQuietly(tools, dir, log);
      log.debug(`unmounted ${dir}`);
    }
  } finally {
    try { fs.rmdirSync(dir); } catch { /* already gone, or still mounted after a lazy detach */ }
  }
}

/** The agent's /dev, /proc, /sys and /run bound into a mounted root, so chrooted tools work. */
export async function withChrootBinds<T>(tools: ToolRunner, root: string, log: Logger, fn: () => Promise<T>): Promise<T> {
  const bound: string[] = [];
  try {
    for (const d of ['/dev', '/proc', '/sys', '/run']) {
      const target = resolveInRoot(root, d);
      if (!target.startsWith(root) || !isDir(target)) {
        log.debug(`chroot: ${d} missing in the deployed OS; not bound`);
        continue;
      }
      await tools.run('mount', ['-o', 'bind', d, target]);
      bound.push(target);
    }
    return await fn();
  } finally {
    for (const t of bound.reverse()) await umountQuietly(tools, t, log);
  }
}

function isDir(p: string): boolean {
  try { return fs.statSync(p).isDirectory(); } catch { return false; }
}
