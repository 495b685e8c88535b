// Post-deploy settings written into the deployed OS before the reboot: mount its root
// filesystem, look at what it uses (netplan, networkd, ifupdown, NetworkManager, resolved),
// write the rendered files, unmount. Writes resolve symlinks inside the deployed root, so an
// absolute link like /etc/resolv.conf -> /run/... never lands in the initramfs.
import fs from 'node:fs';
import path from 'node:path';
import type { PostDeploy } from '../config/action.ts';
import { BootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { realBlockIO, type BlockIO } from './block-io.ts';
import { detectContent, DETECT_BYTES, type Content } from './fs-detect.ts';
import { deactivateVg } from './lvm.ts';
import { findOsRoot, listDiskFilesystems, looksLikeOsRoot, rootCandidates, type OsRoot } from './disk-filesystems.ts';
import { withMounted, type FsType } from './mounts.ts';
import { planPostDeploy, type FileWrite, type RootFacts } from './post-deploy-render.ts';
import { existsInRoot, lstatInRoot, resolveInRoot } from './root-path.ts';
import { spawnToolRunner, type ToolRunner } from './tools.ts';

export interface PostDeployOptions {
  disk: string;
  /** the root filesystem's device (partition or LV, e.g. GrowReport.rootDevice); default: detect */
  root?: string;
  settings?: PostDeploy;
  /** the same as settings (the name the agent uses) */
  post?: PostDeploy;
  /** the NIC's name in the initramfs */
  iface?: string;
  /** the NIC's MAC: how the deployed OS's config recognises it */
  mac?: string;
  log: Logger;
  tools?: ToolRunner;
  io?: BlockIO;
  /** more to write into the mounted root after the settings (the trial boot's confirmation unit) */
  also?: (root: string) => void;
}

function failure(message: string, cause?: unknown): BootyError {
  return new BootyError({
    stage: 'grow', code: 'post-deploy', message: `post-deploy: ${message}`, cause,
    hint: 'the image is written (and grown); only the post-deploy settings are missing',
  });
}

export async function applyPostDeploy(opts: PostDeployOptions): Promise<void> {
  const settings = opts.settings ?? opts.post;
  if (settings === undefined && opts.also === undefined) return;
  const { log } = opts;
  const tools = opts.tools ?? spawnToolRunner();
  const io = opts.io ?? realBlockIO();
  // Volume groups findRoot activates are deactivated again here, so the deployed OS finds them
  // clean; a root device given by the caller is the caller's to release.
  const activated: string[] = [];
  try {
    const root = opts.root !== undefined ? { device: opts.root, fstype: fsTypeOf(detectContent(io.readHead(opts.root, DETECT_BYTES)), opts.root) }
      : await findRoot(opts.disk, tools, io, log, activated);
    log.info(`post-deploy: writing settings into ${root.device}`);
    await withMounted(tools, root.device, root.fstype, log, async (dir) => {
      if (!looksLikeOsRoot(dir)) throw failure(`${root.device} does not hold an OS root (no /etc)`);
      if (settings !== undefined) writePostDeploySettings(dir, settings, opts, log);
      opts.also?.(dir);
    });
  } finally {
    for (const vg of activated) {
      await deactivateVg(tools, vg).catch((e: unknown) => log.warn(`post-deploy: could not deactivate volume group ${vg}: ${(e as Error).message}`));
    }
  }
}

/** The settings written into a root that is already mounted at `dir` (a rootfs deploy's); returns the paths written. */
export function writePostDeploySettings(dir: string, settings: PostDeploy, nic: { mac?: string; iface?: string }, log: Logger): string[] {
  const facts = gatherFacts(dir);
  const plan = planPostDeploy(settings, facts, { mac: nic.mac, initramfsName: nic.iface });
  for (const w of plan.warnings) log.warn(`post-deploy: ${w}`);
  for (const w of plan.writes) {
    writeInRoot(dir, w);
    log.info(`post-deploy: wrote ${w.path}`);
  }
  return plan.writes.map((w) => w.path);
}

function fsTypeOf(c: Content, device: string): FsType {
  if (c.kind === 'ext') return 'ext4';
  if (c.kind === 'xfs') return 'xfs';
  throw failure(`${device} holds no ext4 or XFS filesystem`);
}

function isDir(root: string, p: string): boolean {
  try { return fs.statSync(resolveInRoot(root, p)).isDirectory(); } catch { return false; }
}

function readInRoot(root: string, p: string): string | undefined {
  try { return fs.readFileSync(resolveInRoot(root, p), 'utf8'); } catch { return undefined; }
}

export function gatherFacts(root: string): RootFacts {
  const resolv = lstatInRoot(root, '/etc/resolv.conf');
  const libDirs = ['/lib/systemd', '/usr/lib/systemd'];
  return {
    netplan: isDir(root, '/etc/netplan'),
    networkd: libDirs.some((d) => existsInRoot(root, `${d}/systemd-networkd`)),
    ifupdown: existsInRoot(root, '/etc/network/interfaces'),
    networkManager: isDir(root, '/etc/NetworkManager'),
    resolved: libDirs.some((d) => existsInRoot(root, `${d}/systemd-resolved`)),
    resolvConf: resolv === undefined ? 'absent' : resolv.isSymbolicLink() ? 'symlink' : 'file',
    hosts: readInRoot(root, '/etc/hosts'),
    interfaces: readInRoot(root, '/etc/network/interfaces'),
  };
}

/** Write one file inside the deployed root: parents created, symlinks resolved inside it. */
export function writeInRoot(root: string, w: FileWrite): void {
  const dirInRoot = path.posix.dirname(w.path);
  const parent = resolveInRoot(root, dirInRoot);
  fs.mkdirSync(parent, { recursive: true, mode: 0o755 });
  const target = resolveInRoot(root, w.path);
  const rootReal = path.resolve(root);
  if (target !== rootReal && !target.startsWith(rootReal + path.sep)) throw failure(`${w.path} resolves outside the deployed root`);
  // A symlink pointing at a missing file (e.g. into /run) resolves to a path whose parent may
  // not exist either.
  fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
  const tmp = `${target}.booty-tmp`;
  fs.writeFileSync(tmp, w.content, { mode: w.mode });
  fs.chmodSync(tmp, w.mode);
  fs.renameSync(tmp, target);
}

/**
 * The deployed OS's root filesystem: the partitions of the disk, and the LVs of any volume group
 * on it, that hold ext4/XFS, tried root-named and largest first until one has /etc.
 */
async function findRoot(disk: string, tools: ToolRunner, io: BlockIO, log: Logger, activated: string[]): Promise<OsRoot> {
  const filesystems = await listDiskFilesystems(disk, tools, io, log, activated, 'post-deploy');
  const root = await findOsRoot(filesystems, tools, log);
  if (root !== undefined) return root;
  throw failure(`no filesystem on ${disk} holds an OS root (/etc/os-release or /etc/fstab); tried ${rootCandidates(filesystems).join(', ') || 'none'}`);
}
