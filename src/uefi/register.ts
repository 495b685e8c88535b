// Post-deploy on a UEFI machine: register the deployed OS's loader as a Boot#### entry and put it
// in BootOrder as the action says. On a BIOS machine (no /sys/firmware/efi) nothing changes.
// The facts come from the disk itself (its GPT: the ESP's number, start, size and unique GUID)
// and from the ESP's files (mounted read-only); the variables are written through efivarfs.
import fs from 'node:fs';
import path from 'node:path';
import { MNT_DETACH, MS_RDONLY, MS_REMOUNT, mount, umount } from '../sys/mount.ts';
import { FS_IMMUTABLE_FL, getInodeFlags, setInodeFlags } from '../sys/inode-flags.ts';
import { blockDeviceSize, logicalSectorSize } from '../sys/blockdev.ts';
import { fdSectorSource } from '../disk/partition-table/fd-source.ts';
import { readGpt } from '../disk/partition-table/gpt.ts';
import { detectTable } from '../disk/partition-table/table.ts';
import { partitionPath } from '../disk/partition-names.ts';
import { BootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { applyBootEntry, describeEntries, findLoader, osNameOf, planBootEntry, type BootOrderPolicy, type EspListing } from './boot-entry.ts';
import { EFIVARFS_DIR, efivarfsStore } from './efivars.ts';
import { guidText } from './load-option.ts';

export const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';

export interface RegisterOptions {
  disk: string;
  order: BootOrderPolicy;
  log: Logger;
  /** loads kernel modules by name (efivarfs, vfat) */
  loadModules(names: string[]): void;
  /** /sys/firmware/efi, for tests */
  efiDir?: string;
}

export interface RegisterResult { written: boolean; reason: string; entry?: string; bootOrder?: string }

interface GptPart { number: number; start: number; end: number; type: string; uniqueGuid: string }

function readDiskGpt(disk: string): GptPart[] | 'not-gpt' {
  const fd = fs.openSync(disk, 'r');
  try {
    const ss = logicalSectorSize(fd);
    const src = fdSectorSource(fd, blockDeviceSize(fd), ss);
    if (detectTable(src) !== 'gpt') return 'not-gpt';
    const gpt = readGpt(src);
    const size = gpt.header.entrySize;
    return gpt.table.partitions.map((p) => ({
      ...p, uniqueGuid: guidText(gpt.entries.subarray((p.number - 1) * size + 16, (p.number - 1) * size + 32)),
    }));
  } finally { fs.closeSync(fd); }
}

function espListing(root: string): EspListing {
  const efi = fs.readdirSync(root).find((d) => d.toLowerCase() === 'efi');
  const vendorDirs = efi === undefined ? [] : fs.readdirSync(path.join(root, efi)).filter((d) => fs.statSync(path.join(root, efi, d)).isDirectory());
  return {
    vendorDirs,
    // vfat looks names up ignoring case
    exists: (rel) => fs.existsSync(path.join(root, rel)),
  };
}

/** Whether DIR is a mount point mounted read-only (/proc/self/mounts; octal escapes are not
 *  needed for this path). */
function mountedReadOnly(dir: string): boolean {
  let text: string;
  try { text = fs.readFileSync('/proc/self/mounts', 'utf8'); } catch { return false; }
  const line = text.split('\n').reverse().find((l) => l.split(' ')[1] === dir);
  return line !== undefined && (line.split(' ')[3] ?? '').split(',').includes('ro');
}

function ensureEfivarfs(opts: RegisterOptions): void {
  const dir = path.join(opts.efiDir ?? '/sys/firmware/efi', 'efivars');
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) {
    // the inventory mounts it read-only at boot (it only reads the Secure Boot state)
    if (mountedReadOnly(dir)) {
      try { mount('efivarfs', dir, 'efivarfs', MS_REMOUNT, null); } catch (e) {
        throw new BootyError({
          stage: 'grow', code: 'efivarfs', cause: e,
          message: `cannot remount efivarfs on ${dir} read-write: ${(e as Error).message}`,
          hint: 'the image is written and grown; the firmware can still boot it from its fallback path \\EFI\\BOOT\\BOOTX64.EFI, but booty wrote no boot entry',
        });
      }
      opts.log.info(`uefi: efivarfs remounted read-write on ${dir}`);
    }
    return;
  }
  opts.loadModules(['efivarfs']);
  try {
    mount('efivarfs', dir, 'efivarfs', 0, null);
  } catch (e) {
    throw new BootyError({
      stage: 'grow', code: 'efivarfs', cause: e,
      message: `cannot mount efivarfs on ${dir}: ${(e as Error).message}`,
      hint: 'the image is written and grown; the firmware can still boot it from its fallback path \\EFI\\BOOT\\BOOTX64.EFI, but booty wrote no boot entry',
    });
  }
}

export async function registerBootEntry(opts: RegisterOptions): Promise<RegisterResult> {
  const efiDir = opts.efiDir ?? '/sys/firmware/efi';
  if (!fs.existsSync(efiDir)) {
    opts.log.info('boot entry: BIOS machine (no /sys/firmware/efi): nothing to write');
    return { written: false, reason: 'bios' };
  }
  const diskName = path.basename(opts.disk);
  const parts = readDiskGpt(opts.disk);
  if (parts === 'not-gpt') {
    opts.log.warn(`boot entry: ${opts.disk} has no GPT; a UEFI machine boots it only through a legacy/CSM mode or its fallback path; no boot entry written`);
    return { written: false, reason: 'not-gpt' };
  }
  const esp = parts.find((p) => p.type === ESP_TYPE);
  if (esp === undefined) {
    opts.log.warn(`boot entry: ${opts.disk} has no EFI system partition (type ${ESP_TYPE}); no boot entry written`);
    return { written: false, reason: 'no-esp' };
  }
  opts.loadModules(['vfat', 'nls_cp437', 'nls_ascii']);
  const dev = partitionPath(opts.disk, esp.number);
  const mnt = fs.mkdtempSync('/tmp/booty-esp-');
  let loader;
  try {
    try { mount(dev, mnt, 'vfat', MS_RDONLY, null); } catch (e) {
      throw new BootyError({
        stage: 'grow', code: 'esp-mount', cause: e,
        message: `cannot mount the EFI system partition ${dev} (vfat, read-only): ${(e as Error).message}`,
        hint: 'the image is written and grown; no boot entry was written, the firmware may still boot its fallback path',
      });
    }
    try { loader = findLoader(espListing(mnt)); } finally { try { umount(mnt, 0); } catch { umount(mnt, MNT_DETACH); } }
  } finally { fs.rmdirSync(mnt); }
  if (loader === undefined) {
    opts.log.warn(`boot entry: the EFI system partition ${dev} holds no shimx64.efi, grubx64.efi, systemd-bootx64.efi or \\EFI\\BOOT\\BOOTX64.EFI; no boot entry written`);
    return { written: false, reason: 'no-loader' };
  }
  ensureEfivarfs(opts);
  const store = efivarfsStore(path.join(efiDir, 'efivars'), { get: getInodeFlags, set: setInodeFlags, immutable: FS_IMMUTABLE_FL });
  const plan = planBootEntry(store, {
    diskName, loader: loader.path, osName: osNameOf(loader), order: opts.order,
    esp: { partitionNumber: esp.number, startLba: BigInt(esp.start), sizeLba: BigInt(esp.end - esp.start + 1), partitionGuid: esp.uniqueGuid },
    diskPartitionGuids: parts.map((p) => p.uniqueGuid),
  });
  const hex = (ns: number[]) => ns.map((n) => n.toString(16).toUpperCase().padStart(4, '0')).join(',') || '(empty)';
  try {
    applyBootEntry(store, plan);
  } catch (e) {
    throw new BootyError({
      stage: 'grow', code: 'efi-variables', cause: e,
      message: `cannot write the UEFI boot entry Boot${hex([plan.number])} or BootOrder: ${(e as Error).message}`,
      hint: 'the image is written and grown; BootOrder may still be the old one (the firmware can boot the fallback path \\EFI\\BOOT\\BOOTX64.EFI)',
    });
  }
  const entry = `Boot${hex([plan.number])} "${plan.description}" -> ${loader.path} on ${dev} (${loader.kind})`;
  opts.log.info(`boot entry: wrote ${entry}${plan.replaced.length > 0 ? `, replacing booty's earlier ${hex(plan.replaced)}` : ''}`);
  opts.log.info(`boot entry: BootOrder ${hex(plan.orderBefore)} -> ${hex(plan.orderAfter)} (${opts.order}${plan.network.length > 0 ? `; network entries ${hex(plan.network)}` : ''}${plan.via !== undefined ? `; booted through ${hex([plan.via])}` : ''})`);
  if (plan.bootNext !== undefined) opts.log.info(`boot entry: BootNext ${hex([plan.bootNext])} (trial: the next boot only starts the new OS; the boots after it follow BootOrder, network first)`);
  for (const l of describeEntries(store)) opts.log.debug(`efi: ${l}`);
  return { written: true, reason: 'written', entry, bootOrder: hex(plan.orderAfter) };
}
