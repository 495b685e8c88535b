// Growing a filesystem to fill its (already grown) partition or LV. Nothing uses a freshly
// deployed filesystem, so ext2/3/4 grows OFFLINE: `e2fsck -f -y` then `resize2fs` on the
// unmounted device. (An online resize2fs of a filesystem mounted only for the purpose buys
// nothing and has crashed guest kernels: "kernel BUG at fs/jbd2/journal.c" on a 1 KiB-block ext4
// made by mkfs.ext4 -d.) The initramfs's e2fsprogs go first; when they refuse the filesystem
// (features newer than they know), the deployed OS's own tools run through chroot: from a root
// on another device, still offline, or, when the filesystem is the root itself, online as the
// last resort. XFS only grows mounted: mount, xfs_growfs, unmount.
import { isBootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { withChrootBinds, withMounted, type FsType } from './mounts.ts';
import { growError } from './partition-table/types.ts';
import type { ToolRunner } from './tools.ts';

export type FsKind = 'ext' | 'xfs';

export type ToolSource = 'chroot' | 'initramfs';

/** How a grow went: whose tools, and whether the filesystem was mounted meanwhile. */
export interface FsGrowResult {
  toolsFrom: ToolSource;
  mode: 'offline' | 'online';
}

/** A device that may hold the deployed OS's root (for its tools), with its filesystem type. */
export interface ToolRootCandidate {
  device: string;
  fstype: FsType;
}

export interface FsGrowOptions {
  device: string;
  kind: FsKind;
  tools: ToolRunner;
  log: Logger;
  /** use the deployed OS's tools when the initramfs's cannot do it (default true) */
  chrootFallback?: boolean;
  /** other filesystems of the disk that may hold the OS's tools; asked only when needed */
  otherRoots?: () => Promise<ToolRootCandidate[]>;
  /** things the operator should know (fallbacks taken) */
  note?: (text: string) => void;
}

/** e2fsck: 0 clean, 1 errors corrected, 2 corrected and a reboot advised (nothing has it mounted). */
const E2FSCK_OK = [0, 1, 2];

function missing(tool: string): Error {
  return growError('tool-missing', `${tool} is neither in the initramfs nor in the deployed OS; the filesystem was not grown`,
    'the partition (and LV) are grown: run the tool once the OS is up, or add it to the initramfs');
}

function fstypeOf(kind: FsKind): FsType {
  return kind === 'ext' ? 'ext4' : 'xfs';
}

export async function growFilesystem(o: FsGrowOptions): Promise<FsGrowResult> {
  return o.kind === 'ext' ? growExt(o) : growXfs(o);
}

async function extOffline(o: FsGrowOptions, root: string | undefined): Promise<void> {
  const where = root === undefined ? {} : { root };
  await o.tools.run('e2fsck', ['-f', '-y', o.device], { ...where, okCodes: E2FSCK_OK });
  await o.tools.run('resize2fs', [o.device], where);
}

async function growExt(o: FsGrowOptions): Promise<FsGrowResult> {
  const { tools, log } = o;
  const note = o.note ?? ((t: string) => log.warn(`grow: ${t}`));
  const fallback = o.chrootFallback ?? true;
  let refused: Error | undefined;
  if (tools.find('e2fsck') !== undefined && tools.find('resize2fs') !== undefined) {
    log.info(`grow: e2fsck -f -y ${o.device}, then resize2fs (offline, initramfs tools)`);
    try {
      await extOffline(o, undefined);
      return { toolsFrom: 'initramfs', mode: 'offline' };
    } catch (e) {
      if (!fallback || !isBootyError(e) || e.code !== 'tool-failed') throw e;
      refused = e;
      note(`the initramfs's e2fsprogs could not grow ${o.device} (${e.message}); trying the deployed OS's own tools`);
    }
  } else if (!fallback) {
    throw missing(tools.find('e2fsck') === undefined ? 'e2fsck' : 'resize2fs');
  }

  // The OS's tools, offline: from a root on another device, mounted read-only only for the chroot.
  for (const c of (await o.otherRoots?.()) ?? []) {
    if (c.device === o.device) continue;
    const done = await inToolRoot(o, c, ['e2fsck', 'resize2fs'], true, async (root) => {
      log.info(`grow: e2fsck -f -y ${o.device}, then resize2fs (offline, the deployed OS's tools from ${c.device} via chroot)`);
      await extOffline(o, root);
    });
    if (done) return { toolsFrom: 'chroot', mode: 'offline' };
  }
  // Last resort: the filesystem is the root that holds the tools; it can only grow mounted.
  const online = await inToolRoot(o, { device: o.device, fstype: 'ext4' }, ['resize2fs'], false, async (root) => {
    log.info(`grow: resize2fs ${o.device} (online, the deployed OS's own tool via chroot: the last resort)`);
    await tools.run('resize2fs', [o.device], { root });
  });
  if (online) {
    note(`${o.device} was grown online: neither the initramfs's tools nor another root of the disk could do it offline`);
    return { toolsFrom: 'chroot', mode: 'online' };
  }
  throw refused ?? missing('resize2fs');
}

/**
 * Mount `c`, and when it holds all of `need`, run fn inside it (chroot binds in place); true when
 * fn ran. A mount failure or missing tools answer false; fn's own errors propagate.
 */
async function inToolRoot(o: FsGrowOptions, c: ToolRootCandidate, need: string[], readOnly: boolean, fn: (root: string) => Promise<void>): Promise<boolean> {
  let ran = false;
  try {
    await withMounted(o.tools, c.device, c.fstype, o.log, async (dir) => {
      const lacking = need.filter((t) => o.tools.find(t, dir) === undefined);
      if (lacking.length > 0) {
        o.log.debug(`grow: ${c.device} has no ${lacking.join(', ')}; not a root to borrow tools from`);
        return;
      }
      ran = true;
      await withChrootBinds(o.tools, dir, o.log, () => fn(dir));
    }, { readOnly });
  } catch (e) {
    if (ran) throw e;
    o.log.warn(`grow: cannot mount ${c.device} to look for the deployed OS's tools: ${(e as Error).message}`);
  }
  return ran;
}

async function growXfs(o: FsGrowOptions): Promise<FsGrowResult> {
  const { tools, log } = o;
  if (tools.find('xfs_growfs') !== undefined) {
    log.info(`grow: xfs_growfs ${o.device} through a temporary mount (initramfs tool)`);
    await withMounted(tools, o.device, fstypeOf('xfs'), log, async (dir) => { await tools.run('xfs_growfs', [dir]); });
    return { toolsFrom: 'initramfs', mode: 'online' };
  }
  if (!(o.chrootFallback ?? true)) throw missing('xfs_growfs');
  const done = await inToolRoot(o, { device: o.device, fstype: 'xfs' }, ['xfs_growfs'], false, async (root) => {
    log.info(`grow: xfs_growfs / (${o.device}, the deployed OS's own tool via chroot)`);
    await tools.run('xfs_growfs', ['/'], { root });
  });
  if (done) return { toolsFrom: 'chroot', mode: 'online' };
  throw missing('xfs_growfs');
}
