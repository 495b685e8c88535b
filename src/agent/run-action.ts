// Step 6: do what the action says, with the helpers of the data path and the disk code, while
// phases and progress go to the server. Decides nothing about the end of the run (main.ts does:
// reboot, power off or shell per the action's `after`); throws a BootyError on failure, after
// recording in `state` what the disk holds so the failure screen can say it.
import type { Action, CaptureAction, DeployAction, DiskHints, RootfsDeployAction, WipeAction } from '../config/action.ts';
import { summarizeAction } from '../config/parse.ts';
import type { Phase } from '../config/report.ts';
import { growDisk, type GrowReport } from '../disk/grow.ts';
import { deactivateVg } from '../disk/lvm.ts';
import { spawnToolRunner } from '../disk/tools.ts';
import { applyPostDeploy } from '../disk/post-deploy.ts';
import { capture, isTreeFormat } from '../image/capture.ts';
import { deploy, type DeployP2p } from '../image/deploy.ts';
import { metainfoUrlFor } from '../p2p/metainfo-url.ts';
import { deployRootfs } from '../rootfs/deploy-rootfs.ts';
import type { ProgressSnapshot } from '../image/progress.ts';
import type { NetworkHandle } from '../net/configure.ts';
import type { Reporter } from '../report/client.ts';
import { BootyError, type DiskState } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { readBlockSnapshot } from './block-snapshot.ts';
import type { BootParams } from './boot-params.ts';
import { chooseDisk } from './disk-choice.ts';
import type { ModuleLoader } from './modules.ts';
import { runShellOnce } from './shell.ts';
import { runWipeMethod } from './wipe-methods.ts';
import { registerBootEntry } from '../uefi/register.ts';
import { installTrialConfirm, type TrialConfirmSettings } from '../disk/trial-confirm.ts';
import { DEFAULT_CONFIRM_WITHIN } from '../config/action.ts';

/** What the run did to the disk so far; read by the failure screen. */
export interface RunState {
  disk?: string;
  /** the disk state when the error itself does not say */
  diskState: DiskState;
  /** extra words for the failure screen (e.g. the image is written but growing failed) */
  diskNote?: string;
}

export interface RunContext {
  log: Logger;
  params: BootParams;
  net: NetworkHandle;
  reporter: Reporter | undefined;
  modules: ModuleLoader;
  state: RunState;
  /** called once the action's data flows (a deploy's first bytes written): what can wait until
   *  then starts (main.ts: the inventory) */
  onUnderway?: () => void;
}

export interface RunSummary {
  bytes?: number; seconds?: number; sha256?: string; resumes?: number; restarts?: number; warning?: string;
  /** wipe: the method that actually ran, and what its verification read */
  method?: string; verification?: string; verified?: boolean;
}

// Filesystems and device-mapper are not tied to a modalias: load them before growing, where
// LVM activation and mounting the deployed root need them, and before a rootfs capture (not at
// boot: they would only delay the first byte written).
const storageStackModules = ['dm_mod', 'ext4', 'xfs', 'vfat'];

export function phase(ctx: Pick<RunContext, 'reporter'>, p: Phase, detail?: string): void {
  ctx.reporter?.event({ type: 'phase', time: new Date().toISOString(), phase: p, ...(detail === undefined ? {} : { detail }) });
}

/** Progress to the server at most every `everyMs`, whatever rate the data path calls it; the first
 *  bytes also tell ctx.onUnderway. */
function progressReporter(ctx: RunContext, p: Phase, everyMs = 2000): (s: ProgressSnapshot) => void {
  let last = -Infinity;
  let underway = false;
  return (s) => {
    if (!underway && s.bytes > 0) {
      underway = true;
      ctx.onUnderway?.();
    }
    const now = performance.now();
    if (now - last < everyMs) return;
    last = now;
    ctx.reporter?.event({
      type: 'progress', time: new Date().toISOString(), phase: p, bytes: s.bytes, rate: s.rate, wireBytes: s.wireBytes,
      ...(s.total === undefined ? {} : { total: s.total }), ...(s.etaSeconds === undefined ? {} : { etaSeconds: s.etaSeconds }),
      // the dashboard marks resumes and restarts on the throughput chart
      ...(s.resumes === undefined ? {} : { resumes: s.resumes }), ...(s.restarts === undefined ? {} : { restarts: s.restarts }),
    });
  };
}

function pickDisk(ctx: RunContext, named: string | undefined, hints?: DiskHints): string {
  const choice = chooseDisk(readBlockSnapshot(), named, ctx.params.disk, hints);
  ctx.log.info(`target disk: ${choice.disk} (${choice.reason})`);
  ctx.state.disk = choice.disk;
  return choice.disk;
}

/** The action's "p2p" for deploy(): the metainfo beside the image on booty server, asked for with
 *  this machine's credential; the swarm serves peers until the agent reboots (it is never closed). */
function p2pOf(a: DeployAction, p: NonNullable<DeployAction['p2p']>, ctx: RunContext): DeployP2p {
  const metainfoUrl = p.metainfo ?? metainfoUrlFor(a.image);
  if (metainfoUrl === undefined) {
    throw new BootyError({ stage: 'config', code: 'CONFIG_FIELD', diskState: 'untouched', message: `"p2p": ${a.image} is not an image of a booty server (.../images/<name>), and "p2p" names no "metainfo"`,
      hint: 'serve the image from booty server --p2p, or give the metainfo\'s URL in "p2p": {"metainfo": URL}' });
  }
  return {
    metainfoUrl, rack: p.rack,
    metainfoHeaders: ctx.params.token === undefined ? undefined : { authorization: `Bearer ${ctx.params.token}` },
    ...(p.stallTimeout === undefined ? {} : { stallTimeoutMs: p.stallTimeout * 1000 }),
    ...(p.windowMiB === undefined ? {} : { windowBytes: p.windowMiB * 2 ** 20 }),
    ...(p.cacheMiB === undefined ? {} : { cacheBytes: p.cacheMiB * 2 ** 20 }),
    lingerMs: 24 * 3600_000,
  };
}

async function runDeploy(a: DeployAction, ctx: RunContext): Promise<RunSummary> {
  phase(ctx, 'preflight');
  const trial = trialSettings(a, ctx);
  const disk = pickDisk(ctx, a.disk, a.diskHints);
  if (a.dryRun) {
    ctx.log.info(`dry run: would write ${a.image} to ${disk}; nothing written`);
    return {};
  }
  phase(ctx, 'writing', `${a.image} -> ${disk}`);
  // From here a failure may have written part of the image; deploy's errors say exactly.
  ctx.state.diskState = 'unknown';
  const r = await deploy({
    image: a.image, disk, sha256: a.sha256, format: a.format, imageSize: a.imageSize, log: ctx.log,
    onProgress: progressReporter(ctx, 'writing'),
    // the action's resume settings (seconds) reach the data path
    restartOnChange: a.restartOnChange,
    requireChecksum: a.requireChecksum,
    registryAuth: a.registryAuth,
    ...(a.gzipIndex === undefined ? {} : { gzipIndex: a.gzipIndex }),
    ...(a.stallTimeout === undefined ? {} : { stallTimeoutMs: a.stallTimeout * 1000 }),
    ...(a.retryFor === undefined ? {} : { retryForMs: a.retryFor * 1000 }),
    ...(a.p2p === undefined ? {} : { p2p: p2pOf(a, a.p2p, ctx) }),
  });
  ctx.state.diskState = 'unknown';
  ctx.state.diskNote = 'the image was written and verified, but a later step failed';
  ctx.log.info(`deploy: wrote ${r.bytesWritten} bytes (${r.format}, ${r.wireBytes} bytes over the network) in ${r.seconds.toFixed(1)} s; sha256 ${r.sha256}`);

  const configure = a.post !== undefined || trial !== undefined;
  if (a.grow !== false || configure) ctx.modules.load(storageStackModules, new Map(storageStackModules.map((m) => [m, 'growing and configuring'])), true);
  // The volume group grow activates stays active for the post-deploy settings, and is
  // deactivated here, also after a failure, so the deployed OS finds it clean at its first boot.
  let grown: GrowReport | undefined;
  try {
    if (a.grow !== false) {
      phase(ctx, 'growing');
      grown = await growStep(a, disk, ctx);
    }
    if (configure) {
      phase(ctx, 'configuring');
      await postDeployStep(a, disk, grown?.rootDevice, ctx, trial);
    }
  } finally {
    if (grown?.lvm?.active === true) await releaseVg(grown.lvm.vg, ctx);
  }
  await registerBootEntry({
    disk, order: a.bootOrder ?? 'network-first', log: ctx.log,
    loadModules: (names) => ctx.modules.load(names, new Map(names.map((m) => [m, 'the UEFI boot entry'])), true),
  });
  ctx.state.diskNote = undefined;
  return { bytes: r.bytesWritten, seconds: r.seconds, sha256: r.sha256, resumes: r.resumes, restarts: r.restarts, ...(r.unverified === undefined ? {} : { warning: r.unverified }) };
}

async function runRootfsDeploy(a: RootfsDeployAction, ctx: RunContext): Promise<RunSummary> {
  phase(ctx, 'preflight');
  const disk = pickDisk(ctx, a.disk, a.diskHints);
  if (a.dryRun) {
    ctx.log.info(`dry run: would lay out ${disk} and extract ${a.rootfs} onto it; nothing written`);
    return {};
  }
  // mkfs and mount need the filesystems (vfat for the ESP) before the first partition exists
  // (the ESP's vfat mount needs its code pages, which nothing depends on)
  const modules = [...storageStackModules, 'nls_cp437', 'nls_ascii'];
  ctx.modules.load(modules, new Map(modules.map((m) => [m, 'making and mounting filesystems'])), true);
  phase(ctx, 'writing', `${a.rootfs} -> ${disk}`);
  ctx.state.diskState = 'unknown';
  const r = await deployRootfs({
    rootfs: a.rootfs, disk, sha256: a.sha256, layout: a.layout, bootloader: a.bootloader, fstab: a.fstab, post: a.post,
    nic: { mac: ctx.net.mac, iface: ctx.net.iface }, log: ctx.log, onProgress: progressReporter(ctx, 'writing'),
    ...(a.stallTimeout === undefined ? {} : { stallTimeoutMs: a.stallTimeout * 1000 }),
    ...(a.retryFor === undefined ? {} : { retryForMs: a.retryFor * 1000 }),
  });
  // grub-install wrote only the removable path (\EFI\BOOT\BOOTX64.EFI); on a UEFI machine
  // the deployed OS also gets its Boot#### entry, as an image deploy does (nothing on BIOS)
  if (a.bootloader === 'grub-efi' || a.bootloader === 'both') {
    await registerBootEntry({
      disk, order: a.bootOrder ?? 'network-first', log: ctx.log,
      loadModules: (names) => ctx.modules.load(names, new Map(names.map((m) => [m, 'the UEFI boot entry'])), true),
    });
  }
  return { bytes: r.bytesWritten, seconds: r.seconds, sha256: r.sha256, resumes: r.resumes };
}

async function runCapture(a: CaptureAction, ctx: RunContext): Promise<RunSummary> {
  phase(ctx, 'preflight');
  const disk = pickDisk(ctx, a.disk, a.diskHints);
  ctx.state.diskState = 'intact';
  if (a.dryRun) {
    ctx.log.info(`dry run: would upload ${disk} to ${a.upload}; nothing read`);
    return {};
  }
  phase(ctx, 'capturing', `${disk} -> ${a.upload}`);
  return captureStep(a, disk, ctx);
}

async function runWipe(a: WipeAction, ctx: RunContext): Promise<RunSummary> {
  phase(ctx, 'preflight');
  const disk = pickDisk(ctx, a.disk, a.diskHints);
  if (a.dryRun) {
    ctx.log.info(`dry run: would wipe ${disk}; nothing written`);
    return {};
  }
  phase(ctx, 'writing', `wipe ${disk}`);
  ctx.state.diskState = 'unknown';
  const started = performance.now();
  const r = await runWipeMethod({
    disk, method: a.method, fallback: a.fallback, log: ctx.log,
    onProgress: (bytes, total) => ctx.reporter?.event({ type: 'progress', time: new Date().toISOString(), phase: 'writing', bytes, total, rate: bytes / Math.max(0.001, (performance.now() - started) / 1000) }),
  });
  phase(ctx, 'verifying', r.verification);
  ctx.log.info(`wipe: ${disk}: ${r.method}; verification: ${r.verification}`);
  return { bytes: r.bytesZeroed, seconds: (performance.now() - started) / 1000, method: r.method, verification: r.verification, verified: r.verified };
}

export async function runAction(action: Action, ctx: RunContext): Promise<RunSummary> {
  ctx.log.info(`action: ${summarizeAction(action)}${action.dryRun ? ' (dry run)' : ''}`);
  switch (action.action) {
    case 'deploy': return runDeploy(action, ctx);
    case 'deploy-rootfs': return runRootfsDeploy(action, ctx);
    case 'capture': return runCapture(action, ctx);
    case 'wipe': return runWipe(action, ctx);
    case 'shell':
      phase(ctx, 'shell');
      ctx.log.info('the action asks for a shell; the run goes on when it exits');
      await runShellOnce(ctx.log);
      return {};
    case 'none':
      ctx.log.info('nothing to do');
      return {};
    case 'inspect':
      // main.ts waits for an operator's action before step 6; here only when called directly
      ctx.log.info('inspect: the inventory was reported; nothing else to do');
      return {};
  }
}

// The calls into the disk and capture helpers, one function each, so their option shapes are
// adapted in one place.

/** Grows partition, LVM and filesystem (growDisk logs each step and a summary itself). */
async function growStep(a: DeployAction, disk: string, ctx: RunContext): Promise<GrowReport | undefined> {
  if (a.grow === false) return undefined;
  return growDisk({ disk, partition: a.grow.partition, lvmRoot: a.grow.lvmRoot, log: ctx.log, keepVgActive: a.post !== undefined || a.bootOrder === 'trial' });
}

async function releaseVg(vg: string, ctx: RunContext): Promise<void> {
  try {
    await deactivateVg(spawnToolRunner(), vg);
    ctx.log.info(`deactivated volume group ${vg}`);
  } catch (e) {
    ctx.log.warn(`could not deactivate volume group ${vg} (${(e as Error).message}); the deployed OS activates it anyway`);
  }
}

async function postDeployStep(a: DeployAction, disk: string, rootDevice: string | undefined, ctx: RunContext, trial: TrialConfirmSettings | undefined): Promise<void> {
  if (a.post === undefined && trial === undefined) return;
  await applyPostDeploy({
    disk, root: rootDevice, post: a.post, iface: ctx.net.iface, mac: ctx.net.mac, log: ctx.log,
    ...(trial === undefined ? {} : { also: (root: string) => installTrialConfirm(root, trial, ctx.log) }),
  });
}

/**
 * bootOrder "trial": what the deployed OS needs to confirm its boot (server, MAC, credential).
 * Checked before the first write: without a credential the OS could never confirm and the trial
 * would always fail after the disk was overwritten.
 */
function trialSettings(a: DeployAction, ctx: RunContext): TrialConfirmSettings | undefined {
  if (a.bootOrder !== 'trial') return undefined;
  const serverUrl = ctx.params.reportBase ?? ctx.params.server?.base;
  if (ctx.params.token === undefined || serverUrl === undefined) {
    throw new BootyError({
      stage: 'config', code: 'trial-no-credential', diskState: 'untouched',
      message: `bootOrder "trial" needs the machine's credential (booty.token=) and the server (MYURL=) on the kernel command line, so the deployed OS can confirm its boot; ${ctx.params.token === undefined ? 'booty.token' : 'MYURL'} is missing`,
      hint: 'boot the machine through the server\'s /ipxe (which adds both), or add them to the command line; nothing was written',
    });
  }
  return { serverUrl, mac: ctx.net.mac.toLowerCase().replace(/:/g, '-'), credential: ctx.params.token, confirmWithin: a.confirmWithin ?? DEFAULT_CONFIRM_WITHIN };
}

async function captureStep(a: CaptureAction, disk: string, ctx: RunContext): Promise<RunSummary> {
  // a rootfs capture mounts the disk's filesystems (LVM, ext4, XFS, an ESP); vfat's mount fails
  // (EINVAL) without its code pages, which no module depends on (found by the rootfs round trip)
  if (isTreeFormat(a.format)) {
    const modules = [...storageStackModules, 'nls_cp437', 'nls_ascii'];
    ctx.modules.load(modules, new Map(modules.map((m) => [m, 'mounting the filesystems to archive'])), true);
  }
  const r = await capture({
    disk, upload: a.upload, format: a.format, level: a.level, protocol: a.protocol, mac: ctx.net.mac,
    headers: ctx.params.token === undefined ? undefined : { authorization: `Bearer ${ctx.params.token}` },
    log: ctx.log, onProgress: progressReporter(ctx, 'uploading'),
  });
  return { bytes: r.bytesRead, seconds: r.seconds, sha256: r.sha256 };
}
