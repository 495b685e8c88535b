// "Deploy then grow": after an image is written, make it use the whole disk. Re-read the table,
// grow the chosen (or last) partition with our own MBR/GPT codec, tell the kernel, then grow what
// the partition holds: an LVM PV (activate, pvresize, extend the root LV, grow its filesystem) or
// a filesystem directly. The initramfs's own tools do the work, with the filesystem unmounted
// where it can be (ext4: e2fsck + resize2fs offline; XFS only grows mounted); the deployed OS's
// tools through chroot are the fallback for filesystems the initramfs's e2fsprogs refuse (see
// fs-grow.ts). Images without LVM never touch LVM (BOOTy always did). A volume group activated
// here is deactivated again before growDisk returns (or, with keepVgActive, by the caller once
// it is done with the root LV), so the deployed OS finds it clean at its first boot.
import { BootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { realBlockIO, type BlockIO, type DiskHandle } from './block-io.ts';
import { rereadPartitions, syncKernelPartitions } from './kernel-partitions.ts';
import { detectContent, describeContent, formatBytes, DETECT_BYTES, type Content } from './fs-detect.ts';
import { growFilesystem, type FsGrowResult, type FsKind, type ToolRootCandidate } from './fs-grow.ts';
import { activateVg, chooseRootLv, deactivateVg, listLvs, lvextendAll, pvresize, vgFreeBytes, vgOfPv, type LvInfo } from './lvm.ts';
import { planGrow } from './partition-table/table.ts';
import { growError, type GrowPlan } from './partition-table/types.ts';
import { spawnToolRunner, type ToolRunner } from './tools.ts';

export interface GrowDiskOptions {
  disk: string;
  partition: number | 'last';
  /** LV to extend (/dev/vg/lv, vg/lv or /dev/mapper/vg-lv); default: detect */
  lvmRoot?: string;
  log: Logger;
  tools?: ToolRunner;
  io?: BlockIO;
  /** when the initramfs's tools cannot grow the filesystem, use the deployed OS's through chroot (default true) */
  chrootFallback?: boolean;
  /**
   * leave the volume group active on success (for post-deploy settings written into the root LV);
   * the caller then deactivates report.lvm.vg. On failure growDisk always deactivates it.
   */
  keepVgActive?: boolean;
}

export interface GrowReport {
  disk: string;
  table: 'gpt' | 'mbr';
  partition: number;
  partitionDevice: string;
  partitionGrown: boolean;
  partitionBytes: { before: number; after: number };
  /** what the partition holds */
  content: Content['kind'];
  /** active: whether the VG is still active (keepVgActive); the caller deactivates it then */
  lvm?: { vg: string; lv: string; pvResized: boolean; lvExtended: boolean; active: boolean };
  filesystem?: { kind: FsKind; device: string; beforeBytes: number; afterBytes: number } & FsGrowResult;
  /** the device of the grown filesystem (root LV or partition): where post-deploy settings go */
  rootDevice?: string;
  notes: string[];
}

interface Ctx {
  disk: string;
  io: BlockIO;
  tools: ToolRunner;
  log: Logger;
  chrootFallback: boolean;
  keepVgActive: boolean;
  notes: string[];
  /** the table after growing: its other partitions may hold the OS's tools */
  plan?: GrowPlan;
}

export async function growDisk(opts: GrowDiskOptions): Promise<GrowReport> {
  const ctx: Ctx = {
    disk: opts.disk,
    io: opts.io ?? realBlockIO(),
    tools: opts.tools ?? spawnToolRunner(),
    log: opts.log,
    chrootFallback: opts.chrootFallback ?? true,
    keepVgActive: opts.keepVgActive ?? false,
    notes: [],
  };
  const { io, log } = ctx;
  const plan = await growPartitionTable(opts.disk, opts.partition, ctx);
  ctx.plan = plan;
  const ss = plan.sectorSize;
  const report: GrowReport = {
    disk: opts.disk, table: plan.table, partition: plan.partition,
    partitionDevice: io.partitionDevice(opts.disk, plan.partition),
    partitionGrown: plan.changed && plan.newEnd !== plan.oldEnd,
    partitionBytes: { before: (plan.oldEnd - plan.start + 1) * ss, after: (plan.newEnd - plan.start + 1) * ss },
    content: 'unknown', notes: ctx.notes,
  };
  const dev = report.partitionDevice;
  if (!(await io.waitForDevice(dev, 10_000))) {
    throw growError('no-device-node', `partition device ${dev} did not appear within 10 s after the kernel was told about it`,
      'the partition table is grown; the filesystem is not');
  }
  const content = detectContent(io.readHead(dev, DETECT_BYTES));
  report.content = content.kind;
  if (content.kind !== 'unknown') log.info(`grow: ${dev} holds ${describeContent(content)}`);
  switch (content.kind) {
    case 'lvm2-pv':
      await growLvm(dev, opts.lvmRoot, report, ctx);
      break;
    case 'ext':
    case 'xfs':
      report.filesystem = await growFs(dev, content, ctx, () => otherPartitions(dev, ctx));
      report.rootDevice = dev;
      break;
    default:
      note(ctx, `${dev} holds ${describeContent(content)}: only the partition was grown`);
  }
  log.info(`grow: done (${summary(report)})`);
  return report;
}

function note(ctx: Ctx, text: string): void {
  ctx.notes.push(text);
  ctx.log.warn(`grow: ${text}`);
}

function summary(r: GrowReport): string {
  const parts = [`partition ${r.partition} ${formatBytes(r.partitionBytes.before)} -> ${formatBytes(r.partitionBytes.after)}`];
  if (r.lvm) parts.push(`LV ${r.lvm.vg}/${r.lvm.lv}${r.lvm.lvExtended ? ' extended' : ' unchanged'}${r.lvm.active ? ', VG left active' : ''}`);
  if (r.filesystem) parts.push(`${r.filesystem.kind} ${formatBytes(r.filesystem.beforeBytes)} -> ${formatBytes(r.filesystem.afterBytes)} (${r.filesystem.mode}, ${r.filesystem.toolsFrom} tools)`);
  return parts.join(', ');
}

/** Steps 1-3: re-read, grow the table, make the kernel's view match it. */
async function growPartitionTable(diskPath: string, partition: number | 'last', ctx: Ctx): Promise<GrowPlan> {
  const { io, log } = ctx;
  let disk: DiskHandle;
  try {
    disk = io.openDisk(diskPath);
  } catch (e) {
    throw new BootyError({ stage: 'grow', code: 'open-disk', message: `cannot open ${diskPath}: ${(e as Error).message}`, cause: e });
  }
  try {
    const first = await rereadPartitions(disk, io, log);
    const plan = planGrow(disk.source(), { partition });
    for (const n of plan.notes) note(ctx, n);
    const ss = plan.sectorSize;
    if (plan.changed) {
      log.info(`grow: ${plan.table.toUpperCase()} partition ${plan.partition}: sectors ${plan.start}-${plan.oldEnd} -> ${plan.start}-${plan.newEnd} ` +
        `(${formatBytes((plan.oldEnd - plan.start + 1) * ss)} -> ${formatBytes((plan.newEnd - plan.start + 1) * ss)}); writing ${plan.writes.map((w) => w.what).join(', ')}`);
      disk.apply(plan.writes);
      if (first !== 'unsupported') await rereadPartitions(disk, io, log);
    } else {
      log.info(`grow: partition ${plan.partition} already ends at the end of the disk`);
    }
    if (first === 'unsupported') {
      note(ctx, `${diskPath} is not a block device: only its partition table was grown`);
    } else {
      syncKernelPartitions(disk, plan.after, io, log);
    }
    return plan;
  } finally {
    disk.close();
  }
}

/** The disk's other partitions holding ext4/XFS: where the deployed OS's tools may be. */
async function otherPartitions(except: string, ctx: Ctx): Promise<ToolRootCandidate[]> {
  const out: ToolRootCandidate[] = [];
  for (const p of ctx.plan?.after.partitions ?? []) {
    if (p.kind === 'extended') continue;
    const device = ctx.io.partitionDevice(ctx.disk, p.number);
    if (device === except || !(await ctx.io.waitForDevice(device, 2_000))) continue;
    const c = fsCandidate(device, detectContent(ctx.io.readHead(device, DETECT_BYTES)));
    if (c !== undefined) out.push(c);
  }
  return out;
}

function fsCandidate(device: string, c: Content | undefined): ToolRootCandidate | undefined {
  if (c?.kind === 'ext') return { device, fstype: 'ext4' };
  if (c?.kind === 'xfs') return { device, fstype: 'xfs' };
  return undefined;
}

function fsKindOf(c: Content | undefined): FsKind | undefined {
  return c?.kind === 'ext' || c?.kind === 'xfs' ? c.kind : undefined;
}

async function growFs(device: string, content: Content & { kind: FsKind }, ctx: Ctx,
  otherRoots: () => Promise<ToolRootCandidate[]>): Promise<NonNullable<GrowReport['filesystem']>> {
  const how = await growFilesystem({
    device, kind: content.kind, tools: ctx.tools, log: ctx.log, chrootFallback: ctx.chrootFallback,
    otherRoots, note: (t) => note(ctx, t),
  });
  const after = detectContent(ctx.io.readHead(device, DETECT_BYTES));
  const afterBytes = after.kind === content.kind ? after.sizeBytes : content.sizeBytes;
  return { kind: content.kind, device, beforeBytes: content.sizeBytes, afterBytes, ...how };
}

/**
 * Activate the PV's volume group (initramfs lvm: the deployed OS's tools sit inside the LVs),
 * pvresize, extend the root LV over the free space, grow its filesystem; deactivate the VG
 * again unless the caller keeps it for post-deploy settings.
 */
async function growLvm(pv: string, lvmRoot: string | undefined, report: GrowReport, ctx: Ctx): Promise<void> {
  const { tools, log } = ctx;
  if (tools.find('lvm') === undefined) {
    throw growError('tool-missing', `${pv} is an LVM physical volume but the initramfs has no lvm tool to activate it`,
      'the partition is grown; add lvm to the initramfs, or grow the PV/LV once the OS is up');
  }
  const vg = await vgOfPv(tools, pv);
  log.info(`grow: activating volume group ${vg}`);
  await activateVg(tools, vg);
  let ok = false;
  try {
    await growActiveVg(pv, vg, lvmRoot, report, ctx);
    ok = true;
  } finally {
    if (!(ok && ctx.keepVgActive)) await releaseVg(vg, report, ctx, ok);
  }
}

async function releaseVg(vg: string, report: GrowReport, ctx: Ctx, ok: boolean): Promise<void> {
  try {
    await deactivateVg(ctx.tools, vg);
    if (report.lvm !== undefined) report.lvm.active = false;
    ctx.log.info(`grow: deactivated volume group ${vg}`);
  } catch (e) {
    // After a failure the first error is the one to show; after success a VG left active is no
    // harm to the reboot (its metadata is on disk), but say so.
    if (ok) note(ctx, `could not deactivate volume group ${vg}: ${(e as Error).message}`);
    else ctx.log.warn(`grow: could not deactivate volume group ${vg}: ${(e as Error).message}`);
  }
}

async function growActiveVg(pv: string, vg: string, lvmRoot: string | undefined, report: GrowReport, ctx: Ctx): Promise<void> {
  const { tools, io, log } = ctx;
  const lvs = await listLvs(tools, vg);
  const contents = new Map<string, Content>();
  for (const lv of lvs) {
    if (!(await io.waitForDevice(lv.path, 5_000))) {
      log.debug(`grow: ${lv.path} did not appear`);
      continue;
    }
    contents.set(lv.path, detectContent(io.readHead(lv.path, DETECT_BYTES)));
  }
  const root = chooseRootLv(lvs, lvmRoot, contents);
  const rootContent = contents.get(root.path);
  const kind = fsKindOf(rootContent);
  log.info(`grow: root LV ${root.path} holds ${rootContent === undefined ? 'an unreadable device' : describeContent(rootContent)}`);
  const lvm: NonNullable<GrowReport['lvm']> = { vg, lv: root.name, pvResized: false, lvExtended: false, active: true };
  report.lvm = lvm;
  report.rootDevice = root.path;

  log.info(`grow: pvresize ${pv}`);
  await pvresize(tools, pv);
  lvm.pvResized = true;
  const free = await vgFreeBytes(tools, vg);
  if (free > 0) {
    log.info(`grow: lvextend -l +100%FREE ${root.path} (+${formatBytes(free)})`);
    await lvextendAll(tools, root.path);
    lvm.lvExtended = true;
  } else {
    log.info(`grow: volume group ${vg} has no free space; ${root.path} stays as it is`);
  }
  if (kind === undefined || rootContent === undefined) {
    note(ctx, `${root.path} holds ${rootContent === undefined ? 'an unreadable device' : describeContent(rootContent)}: the LV was extended, its content not grown`);
    return;
  }
  const otherRoots = async (): Promise<ToolRootCandidate[]> => [
    ...otherLvs(lvs, root, contents),
    ...(await otherPartitions(pv, ctx)),
  ];
  report.filesystem = await growFs(root.path, rootContent as Content & { kind: FsKind }, ctx, otherRoots);
}

function otherLvs(lvs: LvInfo[], root: LvInfo, contents: Map<string, Content>): ToolRootCandidate[] {
  return lvs.filter((l) => l.path !== root.path)
    .map((l) => fsCandidate(l.path, contents.get(l.path)))
    .filter((c): c is ToolRootCandidate => c !== undefined);
}
