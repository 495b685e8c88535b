// The boot loader of a rootfs deploy, installed by the deployed tree's own grub through chroot
// (the grub modules, its config generator and the kernel's initramfs tools are the distribution's,
// matching its kernel). Before anything runs, the tree is checked for what the choice needs, so a
// tree without a kernel or without grub's platform files is refused naming the missing piece.
import fs from 'node:fs';
import path from 'node:path';
import { BootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import type { Bootloader } from '../config/rootfs-layout.ts';
import { withChrootBinds } from '../disk/mounts.ts';
import { resolveInRoot } from '../disk/root-path.ts';
import type { ToolRunner } from '../disk/tools.ts';
import { decideInitramfs } from './initramfs-decision.ts';

export interface BootloaderOptions {
  /** the mounted deployed tree (its /boot and /boot/efi mounted inside it) */
  root: string;
  /** the whole disk grub-bios goes onto */
  disk: string;
  bootloader: Bootloader;
  tools: ToolRunner;
  log: Logger;
  /** On a machine booted by UEFI, called after grub-efi is installed (as \EFI\BOOT\BOOTX64.EFI)
   *  to add a firmware boot entry (efibootmgr); booty itself adds none yet, and the removable
   *  path boots without one. */
  onUefiMachine?: (ctx: { root: string; disk: string }) => Promise<void>;
  /** whether this machine booted by UEFI (default: /sys/firmware/efi exists) */
  uefiMachine?: boolean;
  /** the filesystems booty made: grub-mkconfig writes root=UUID=... only when
   *  /dev/disk/by-uuid/<uuid> exists, which udev makes and the initramfs has no udev for */
  filesystems?: Array<{ uuid: string; device: string }>;
  /** the paths booty wrote into the tree before this step (fstab, machine-id, post settings):
   *  whether the tarball's initramfs can be kept depends on them (initramfs-decision.ts) */
  written?: string[];
}

export interface BootloaderReport {
  installed: Array<'grub-bios' | 'grub-efi'>;
  kernels: string[];
  initramfsUpdated: boolean;
  /** why the initramfs was or was not regenerated */
  initramfsReason?: string;
}

function missing(what: string, hint: string): BootyError {
  return new BootyError({ stage: 'write', code: 'BOOTLOADER_MISSING', diskState: 'partially-written',
    message: `rootfs: cannot install the boot loader: ${what}`, hint });
}

function listBoot(root: string): string[] {
  try { return fs.readdirSync(resolveInRoot(root, '/boot')); } catch { return []; }
}

function isDirIn(root: string, p: string): boolean {
  try { return fs.statSync(resolveInRoot(root, p)).isDirectory(); } catch { return false; }
}

/** What the tree lacks for `bootloader`, checked before any tool runs. */
export function checkBootable(root: string, bootloader: Bootloader, tools: ToolRunner): { kernels: string[] } {
  if (bootloader === 'none') return { kernels: [] };
  const kernels = listBoot(root).filter((n) => n.startsWith('vmlinuz-')).sort();
  if (kernels.length === 0) {
    throw missing('the tree has no kernel (no /boot/vmlinuz-*)', 'install a kernel into the rootfs (Debian: linux-image-amd64), or deploy with "bootloader": "none"');
  }
  const needs: Array<[string, string, string]> = [];
  if (bootloader === 'grub-bios' || bootloader === 'both') needs.push(['/usr/lib/grub/i386-pc', 'grub-bios', 'grub-pc-bin (or grub-pc)']);
  if (bootloader === 'grub-efi' || bootloader === 'both') needs.push(['/usr/lib/grub/x86_64-efi', 'grub-efi', 'grub-efi-amd64-bin']);
  for (const [dir, which, pkg] of needs) {
    if (!isDirIn(root, dir)) throw missing(`the tree has no grub for ${which} (no ${dir})`, `install ${pkg} into the rootfs, or choose another "bootloader"`);
  }
  if (tools.find('grub-install', root) === undefined) {
    throw missing('the tree has no grub-install', 'install grub2-common (Debian: it comes with grub-pc or grub-efi-amd64) into the rootfs, or deploy with "bootloader": "none"');
  }
  if (tools.find('update-grub', root) === undefined && tools.find('grub-mkconfig', root) === undefined) {
    throw missing('the tree has neither update-grub nor grub-mkconfig', 'install grub-common into the rootfs');
  }
  return { kernels };
}

export async function installBootloader(o: BootloaderOptions): Promise<BootloaderReport> {
  const { root, disk, tools, log } = o;
  const report: BootloaderReport = { installed: [], kernels: [], initramfsUpdated: false };
  if (o.bootloader === 'none') {
    log.info('rootfs: no boot loader installed ("bootloader": "none")');
    return report;
  }
  report.kernels = checkBootable(root, o.bootloader, tools).kernels;
  const run = (tool: string, args: string[], timeoutMs = 15 * 60_000) =>
    tools.run(tool, args, { root, stage: 'write', timeoutMs, env: { DEBIAN_FRONTEND: 'noninteractive' } });
  const links = makeUuidLinks(o.filesystems ?? [], log);
  try {
    await withChrootBinds(tools, root, log, async () => { await runTools(); });
  } finally {
    for (const l of links) { try { fs.unlinkSync(l); } catch { /* gone */ } }
  }
  return report;

  async function runTools(): Promise<void> {
    // the initramfs first: update-grub lists the initrd images it finds
    if (tools.find('update-initramfs', root) !== undefined) {
      const versions = report.kernels.map((k) => k.slice('vmlinuz-'.length));
      const d = decideInitramfs(root, versions, o.written ?? []);
      report.initramfsReason = d.reason;
      if (d.update) {
        log.info(`rootfs: update-initramfs -u -k all (in the deployed tree): ${d.reason}`);
        await run('update-initramfs', ['-u', '-k', 'all']);
        report.initramfsUpdated = true;
      } else {
        log.info(`rootfs: no update-initramfs: ${d.reason}`);
      }
    }
    if (o.bootloader === 'grub-bios' || o.bootloader === 'both') {
      log.info(`rootfs: grub-install --target=i386-pc ${disk}`);
      await run('grub-install', ['--target=i386-pc', disk]);
      report.installed.push('grub-bios');
    }
    if (o.bootloader === 'grub-efi' || o.bootloader === 'both') {
      // --removable: \EFI\BOOT\BOOTX64.EFI, which firmware boots without an NVRAM entry
      log.info('rootfs: grub-install --target=x86_64-efi --efi-directory=/boot/efi --removable --no-nvram');
      await run('grub-install', ['--target=x86_64-efi', '--efi-directory=/boot/efi', '--removable', '--no-nvram']);
      report.installed.push('grub-efi');
      const uefi = o.uefiMachine ?? fs.existsSync('/sys/firmware/efi');
      if (uefi && o.onUefiMachine !== undefined) await o.onUefiMachine({ root, disk });
    }
    if (tools.find('update-grub', root) !== undefined) await run('update-grub', []);
    else await run('grub-mkconfig', ['-o', '/boot/grub/grub.cfg']);
    const cfg = resolveInRoot(root, '/boot/grub/grub.cfg');
    if (!fs.existsSync(cfg)) throw missing('update-grub wrote no /boot/grub/grub.cfg', 'check the tree\'s grub installation');
    const text = fs.readFileSync(cfg, 'utf8');
    log.info(`rootfs: grub.cfg written (${path.basename(cfg)}, kernels: ${report.kernels.join(', ')}; ${/root=UUID=/.test(text) ? 'root by UUID' : 'root NOT by UUID'})`);
  }
}

/** /dev/disk/by-uuid/<uuid> -> the device, where udev did not make it (the initramfs); returns
 *  the links made, removed again after the tools ran. */
function makeUuidLinks(filesystems: Array<{ uuid: string; device: string }>, log: Logger): string[] {
  const dir = '/dev/disk/by-uuid';
  const made: string[] = [];
  for (const f of filesystems) {
    const link = path.join(dir, f.uuid);
    try {
      if (fs.existsSync(link)) continue;
      fs.mkdirSync(dir, { recursive: true });
      fs.symlinkSync(f.device, link);
      made.push(link);
    } catch (e) {
      log.warn(`rootfs: could not link ${link} -> ${f.device} (${(e as Error).message}); grub.cfg may name the root by device`);
    }
  }
  return made;
}
