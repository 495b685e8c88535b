// Growing a filesystem to fill its (already grown) partition or LV. With the deployed root
// mounted and chrooted into, the OS's own resize2fs / xfs_growfs grow it online (inside the chroot
// /proc/mounts shows it mounted at "/", so both tools find it). Without a usable chroot the
// initramfs's tools do it: offline for ext4 (e2fsck -f first, as resize2fs demands), through a
// temporary mount for XFS (which only grows mounted).
import { growError } from './partition-table/types.ts';
import { withMounted } from './mounts.ts';
import type { Logger } from '../util/log.ts';
import type { ToolRunner } from './tools.ts';

export type FsKind = 'ext' | 'xfs';

export interface FsGrowTarget {
  device: string;
  kind: FsKind;
  /** where `device` is mounted on the agent's side, if it is (the chroot root) */
  mountedAt?: string;
  /** run the tools inside this root (it is `device` mounted at mountedAt, with /dev etc. bound) */
  chrootRoot?: string;
}

export type ToolSource = 'chroot' | 'initramfs';

function missing(tool: string): Error {
  return growError('tool-missing', `${tool} is neither in the deployed OS nor in the initramfs; the filesystem was not grown`,
    'the partition (and LV) are grown: run the tool once the OS is up, or add it to the initramfs');
}

export async function growFilesystem(t: FsGrowTarget, tools: ToolRunner, log: Logger): Promise<ToolSource> {
  return t.kind === 'ext' ? growExt(t, tools, log) : growXfs(t, tools, log);
}

async function growExt(t: FsGrowTarget, tools: ToolRunner, log: Logger): Promise<ToolSource> {
  if (t.chrootRoot !== undefined && tools.find('resize2fs', t.chrootRoot) !== undefined) {
    log.info(`grow: resize2fs ${t.device} (online, the deployed OS's own tool via chroot)`);
    await tools.run('resize2fs', [t.device], { root: t.chrootRoot });
    return 'chroot';
  }
  if (tools.find('resize2fs') === undefined) throw missing('resize2fs');
  if (t.mountedAt !== undefined) {
    log.info(`grow: resize2fs ${t.device} (online, initramfs tool)`);
    await tools.run('resize2fs', [t.device]);
    return 'initramfs';
  }
  log.info(`grow: e2fsck -f -y ${t.device}, then resize2fs (offline, initramfs tools)`);
  // e2fsck: 0 clean, 1 errors corrected, 2 corrected and a reboot is advised (irrelevant here:
  // nothing has it mounted). 4 and up: errors left, resize2fs would refuse.
  await tools.run('e2fsck', ['-f', '-y', t.device], { okCodes: [0, 1, 2] });
  await tools.run('resize2fs', [t.device]);
  return 'initramfs';
}

async function growXfs(t: FsGrowTarget, tools: ToolRunner, log: Logger): Promise<ToolSource> {
  if (t.chrootRoot !== undefined && tools.find('xfs_growfs', t.chrootRoot) !== undefined) {
    log.info(`grow: xfs_growfs / (${t.device}, the deployed OS's own tool via chroot)`);
    await tools.run('xfs_growfs', ['/'], { root: t.chrootRoot });
    return 'chroot';
  }
  if (tools.find('xfs_growfs') === undefined) throw missing('xfs_growfs');
  if (t.mountedAt !== undefined) {
    log.info(`grow: xfs_growfs ${t.mountedAt} (${t.device}, initramfs tool)`);
    await tools.run('xfs_growfs', [t.mountedAt]);
    return 'initramfs';
  }
  log.info(`grow: xfs_growfs ${t.device} through a temporary mount (initramfs tool)`);
  await withMounted(tools, t.device, 'xfs', log, (dir) => tools.run('xfs_growfs', [dir]));
  return 'initramfs';
}
