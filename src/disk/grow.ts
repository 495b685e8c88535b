// "Deploy then grow": after an image is written, make it use the whole disk. Re-read the table,
// grow the chosen (or last) partition with our own MBR/GPT codec, tell the kernel, then grow what
// the partition holds: an LVM PV (activate, pvresize, extend the root LV, grow its filesystem) or
// a filesystem directly. As BOOTy did, the tools run inside the deployed OS through chroot when it
// has them, else from the initramfs. Images without LVM never touch LVM (BOOTy always did).
import { BootyError, isBootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { realBlockIO, type BlockIO, type DiskHandle } from './block-io.ts';
import { rereadPartitions, syncKernelPartitions } from './kernel-partitions.ts';
import { detectContent, describeContent, formatBytes, DETECT_BYTES, type Content } from './fs-detect.ts';
import { growFilesystem, type FsKind, type ToolSource } from './fs-grow.ts';
import { activateVg, chooseRootLv, listLvs, lvextendAll, pvresize, vgFreeBytes, vgOfPv, type Where } from './lvm.ts';
import { withChrootBinds, withMounted } from './mounts.ts';
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
  /** run lvm/resize2fs/xfs_growfs inside the deployed OS when it has them (default true) */
  preferChroot?: boolean;
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
  lvm?: { vg: string; lv: string; pvResized: boolean; lvExtended: boolean; toolsFrom: ToolSource };
  filesystem?: { kind: FsKind; device: string; beforeBytes: number; afterBytes: number; toolsFrom: ToolSource };
  /** the device of the grown filesystem (root LV or partition): where post-deploy settings go. The VG stays active. */
  rootDevice?: string;
  notes: string[];
}

interface Ctx {
  io: BlockIO;
  tools: ToolRunner;
  log: Logger;
  preferChroot: boolean;
  notes: string[];
}

export async function growDisk(opts: GrowDiskOptions): Promise<GrowReport> {
  const ctx: Ctx = {
    io: opts.io ?? realBlockIO(),
    tools: opts.tools ?? spawnToolRunner(),
    log: opts.log,
    preferChroot: opts.preferChroot ?? true,
    notes: [],
  };
  const { io, log } = ctx;
  const plan = await growPartitionTable(opts.disk, opts.partition, ctx);
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
      report.filesystem = await growFs(dev, content, ctx);
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
  if (r.lvm) parts.push(`LV ${r.lvm.vg}/${r.lvm.lv}${r.lvm.lvExtended ? ' extended' : ' unchanged'}`);
  if (r.filesystem) parts.push(`${r.filesystem.kind} ${formatBytes(r.filesystem.beforeBytes)} -> ${formatBytes(r.filesystem.afterBytes)} (${r.filesystem.toolsFrom} tools)`);
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

/** Mount `device` and bind /dev,/proc,/sys,/run into it; on a mount failure, run fn without it. */
async function withDeployedRoot<T>(device: string, kind: FsKind | undefined, ctx: Ctx, fn: (root: string | undefined) => Promise<T>): Promise<T> {
  if (!ctx.preferChroot || kind === undefined) return fn(undefined);
  let entered = false;
  try {
    return await withMounted(ctx.tools, device, kind === 'ext' ? 'ext4' : 'xfs', ctx.log, (dir) => {
      entered = true;
      return withChrootBinds(ctx.tools, dir, ctx.log, () => fn(dir));
    });
  } catch (e) {
    if (entered) throw e;
    note(ctx, `could not mount ${device} to use the deployed OS's tools (${(e as Error).message}); using the initramfs tools`);
    return fn(undefined);
  }
}

function fsKindOf(c: Content | undefined): FsKind | undefined {
  return c?.kind === 'ext' || c?.kind === 'xfs' ? c.kind : undefined;
}

async function growFs(device: string, content: Content & { kind: FsKind }, ctx: Ctx): Promise<NonNullable<GrowReport['filesystem']>> {
  const mounted = await withDeployedRoot(device, content.kind, ctx, (root) => growFsMounted(device, content.kind, root, ctx));
  const toolsFrom = mounted ?? await growExtOffline(device, ctx);
  return measure(device, content, toolsFrom, ctx);
}

/**
 * Grow the filesystem while the deployed root is mounted (root undefined: not mounted). An online
 * ext4 resize can be refused (a kernel without online resize for the filesystem's features, a
 * missing CAP_SYS_RESOURCE): then answer undefined, and growExtOffline retries after the unmount.
 */
async function growFsMounted(device: string, kind: FsKind, root: string | undefined, ctx: Ctx): Promise<ToolSource | undefined> {
  try {
    return await growFilesystem({ device, kind, mountedAt: root, chrootRoot: root }, ctx.tools, ctx.log);
  } catch (e) {
    if (root === undefined || kind !== 'ext' || !isBootyError(e) || e.code !== 'tool-failed') throw e;
    if (ctx.tools.find('resize2fs') === undefined || ctx.tools.find('e2fsck') === undefined) throw e;
    note(ctx, `online resize of ${device} failed (${e.message}); retrying offline with the initramfs tools`);
    return undefined;
  }
}

async function growExtOffline(device: string, ctx: Ctx): Promise<ToolSource> {
  return growFilesystem({ device, kind: 'ext' }, ctx.tools, ctx.log);
}

function measure(device: string, before: Content & { kind: FsKind }, toolsFrom: ToolSource, ctx: Ctx): NonNullable<GrowReport['filesystem']> {
  const after = detectContent(ctx.io.readHead(device, DETECT_BYTES));
  const afterBytes = after.kind === before.kind ? after.sizeBytes : before.sizeBytes;
  return { kind: before.kind, device, beforeBytes: before.sizeBytes, afterBytes, toolsFrom };
}

async function growLvm(pv: string, lvmRoot: string | undefined, report: GrowReport, ctx: Ctx): Promise<void> {
  const { tools, io, log } = ctx;
  if (tools.find('lvm') === undefined) {
    throw growError('tool-missing', `${pv} is an LVM physical volume but the initramfs has no lvm tool to activate it`,
      'the partition is grown; add lvm to the initramfs, or grow the PV/LV once the OS is up');
  }
  // Activation must use the initramfs's lvm: the deployed OS's tools sit inside the LVs.
  const vg = await vgOfPv(tools, pv);
  log.info(`grow: activating volume group ${vg}`);
  await activateVg(tools, vg);
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
  const lvm: NonNullable<GrowReport['lvm']> = { vg, lv: root.name, pvResized: false, lvExtended: false, toolsFrom: 'initramfs' };
  report.lvm = lvm;
  report.rootDevice = root.path;

  const mountedFrom = await withDeployedRoot(root.path, kind, ctx, async (dir) => {
    const where: Where = dir !== undefined && tools.find('lvm', dir) !== undefined ? { root: dir } : {};
    lvm.toolsFrom = where.root === undefined ? 'initramfs' : 'chroot';
    log.info(`grow: pvresize ${pv} (${lvm.toolsFrom} lvm)`);
    await pvresize(tools, pv, where);
    lvm.pvResized = true;
    const free = await vgFreeBytes(tools, vg, where);
    if (free > 0) {
      log.info(`grow: lvextend -l +100%FREE ${root.path} (+${formatBytes(free)})`);
      await lvextendAll(tools, root.path, where);
      lvm.lvExtended = true;
    } else {
      log.info(`grow: volume group ${vg} has no free space; ${root.path} stays as it is`);
    }
    if (kind === undefined) return 'skip' as const;
    return growFsMounted(root.path, kind, dir, ctx);
  });
  const fsFrom = mountedFrom === undefined ? await growExtOffline(root.path, ctx) : mountedFrom;
  if (kind === undefined || fsFrom === 'skip' || rootContent === undefined) {
    note(ctx, `${root.path} holds ${rootContent === undefined ? 'an unreadable device' : describeContent(rootContent)}: the LV was extended, its content not grown`);
    return;
  }
  report.filesystem = measure(root.path, rootContent as Content & { kind: FsKind }, fsFrom, ctx);
}
