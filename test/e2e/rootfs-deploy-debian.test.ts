// A rootfs tarball deployed by the real agent: QEMU boots booty's kernel + initramfs with an empty
// 3 GiB disk (SeaBIOS), dnsmasq in a network namespace gives the lease, a real `booty server`
// serves the action and the Debian 12 tarball (scripts/build-test-rootfs.sh: debootstrap with a
// kernel, grub-pc-bin, grub-efi-amd64-bin, ping with its capability, packed by GNU tar --xattrs).
// The agent lays out the default GPT (BIOS boot, ESP, ext4 root on the rest), makes the
// filesystems, extracts, writes fstab, installs grub for BIOS and UEFI through chroot, reboots.
// Then the disk boots ALONE (SeaBIOS -> grub -> Debian), and the image's units report the root
// filesystem filling the disk and `getcap /usr/bin/ping` (the xattr survived every step).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureInitramfs, type BuiltInitramfs } from '../helpers/initramfs-build.ts';
import { startVm } from '../helpers/qemu.ts';
import { QemuNetLab } from '../helpers/qemu-netns-lab.ts';
import { ensureTestRootfs, type TestRootfs } from '../helpers/test-rootfs.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const isRoot = process.getuid?.() === 0;
const have = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const missing = ['qemu-system-x86_64', 'dnsmasq', 'sfdisk', 'debootstrap', 'zstd', 'getcap'].filter((c) => !have(c));
const skip = !isRoot ? (process.env.CI === 'true' ? false : 'needs root (network namespaces, tap, chroot)')
  : skipUnlessPresent(missing.length === 0, `missing: ${missing.join(', ')}`);

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const diskBytes = 3 * GiB;
// generous bounds for TCG on a busy 2-core machine, not timing assertions
const deployMs = 30 * 60_000;
const markerMs = 10 * 60_000;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-rootfs-e2e-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

let initramfs: BuiltInitramfs;
let rootfs: TestRootfs;
/** the disk the first test deployed and booted, for the UEFI boot of the second */
let deployed: string | undefined;

before(async () => {
  if (skip !== false) return;
  [initramfs, rootfs] = await Promise.all([ensureInitramfs(), ensureTestRootfs()]);
});

/** Seconds since kernel start of the first agent log line matching re. */
function stamp(out: string, re: RegExp): number {
  const line = out.split('\n').find((l) => re.test(l));
  const m = line === undefined ? null : /^\[\s*(\d+\.\d+)\] booty:/.exec(line.trim());
  if (m === null) throw new Error(`no timestamped console line matches ${re}`);
  return Number(m[1]);
}

test('a Debian rootfs tarball onto an empty 3 GiB disk by the agent (SeaBIOS); the disk then boots alone, root filling the disk, ping keeps its capability', { skip, timeout: deployMs + markerMs + 120_000 }, async (t) => {
  const mac = '52:54:00:d0:00:41';
  const lab = new QemuNetLab('10.231.41');
  t.after(() => lab.close());
  await lab.startDnsmasq();
  await lab.startServer();
  const url = lab.addImage(rootfs.tarball);
  lab.setAction(mac, { action: 'deploy-rootfs', rootfs: url, sha256: rootfs.sha256, after: 'reboot', onError: 'poweroff' });
  const disk = path.join(work, 'rootfs-bios.img');
  fs.writeFileSync(disk, '');
  fs.truncateSync(disk, diskBytes);

  const started = Date.now();
  const vm = await startVm({
    name: 'rootfs-deploy-debian-bios', kernel: initramfs.kernel, initrd: initramfs.initrd, memMiB: 1024,
    append: `console=ttyS0 quiet ${lab.agentArgs(mac)} booty.countdown=0`,
    disks: [{ path: disk, bus: 'virtio' }], nic: { tap: lab.tap, netns: lab.ns, mac },
  }, t);
  const exit = await vm.waitExit(deployMs);
  const wall = (Date.now() - started) / 1000;
  const out = vm.output;
  assert.equal(exit.code, 0, vm.tail(8000));
  assert.doesNotMatch(out, /BOOTY FAILED|Kernel panic|kernel BUG|Oops:|Call Trace/, vm.tail(8000));
  assert.match(out, /rootfs: partitioning \/dev\/vda \(gpt\): 1: bios-boot 1 MiB, 2: esp vfat \/boot\/efi 512 MiB, 3: linux ext4 \/ 2557 MiB/);
  assert.match(out, /rootfs: extracted \d+ files, .* \(zstd\); sha256 [0-9a-f]{64} \(verified\)/);
  assert.match(out, /rootfs: grub-install --target=i386-pc \/dev\/vda/);
  assert.match(out, /rootfs: grub-install --target=x86_64-efi --efi-directory=\/boot\/efi --removable --no-nvram/);
  // grub-mkconfig names the root by UUID only when /dev/disk/by-uuid has it (booty makes the links)
  assert.match(out, /rootfs: grub\.cfg written \(.*; root by UUID\)/);
  assert.match(out, /reboot: Restarting system/);
  const t0 = stamp(out, /booty: rootfs: partitioning/);
  const t1 = stamp(out, /booty: rootfs: extracted/);
  const t2 = stamp(out, /booty: rootfs: \/dev\/vda deployed in/);
  t.diagnostic(`TCG: partitioning at ${t0.toFixed(1)} s after kernel start, tree extracted by ${t1.toFixed(1)} s (${(t1 - t0).toFixed(0)} s incl. mkfs), ` +
    `boot loader and initramfs done by ${t2.toFixed(1)} s; QEMU wall time ${wall.toFixed(0)} s; tarball ${(rootfs.bytes / MiB).toFixed(0)} MiB, tree ${(rootfs.treeBytes / MiB).toFixed(0)} MiB`);

  // the table as sfdisk reads it from the disk file
  const table = (JSON.parse(execFileSync('sfdisk', ['--json', disk], { encoding: 'utf8' })) as { partitiontable: { label: string; partitions: Array<{ start: number; size: number; type: string }> } }).partitiontable;
  assert.equal(table.label, 'gpt');
  assert.deepEqual(table.partitions.map((p) => p.type), ['21686148-6449-6E6F-744E-656564454649', 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', '0FC63DAF-8483-4772-8E79-3D69D8477DE4']);

  // the disk alone: SeaBIOS -> grub (core image in the BIOS boot partition) -> Debian
  const boot = Date.now();
  const vm2 = await startVm({ name: 'rootfs-deploy-debian-bios-firstboot', memMiB: 1024, disks: [{ path: disk, bus: 'virtio' }] }, t);
  const caps = await vm2.waitFor(/BOOTY-TEST-CAPS ([^\r\n]*)[\r\n]/, markerMs);
  const m = await vm2.waitFor(/BOOTY-TEST-MARKER ([^\r\n]*)[\r\n]/, markerMs);
  t.diagnostic(`first boot: marker ${((Date.now() - boot) / 1000).toFixed(0)} s after QEMU started: ${m[1].trim()}; ${caps[1].trim()}`);
  await vm2.waitExit(120_000);
  assert.doesNotMatch(vm2.output, /Kernel panic|kernel BUG|emergency mode|fsck.*(failed|UNEXPECTED)|Failed to mount/i, vm2.tail(6000));
  const fields = Object.fromEntries(m[1].trim().split(/\s+/).map((kv) => kv.split('=') as [string, string]));
  assert.equal(fields.variant, 'rootfs');
  assert.equal(fields.root, '/dev/vda3');
  assert.equal(Number(fields.disk_bytes), diskBytes);
  const rootBytes = Number(fields.rootfs_bytes);
  // the root partition is 3 GiB - 514 MiB - the backup GPT's MiB; ext4 takes a little for itself
  assert.ok(rootBytes > 2.3 * GiB && rootBytes <= diskBytes - 514 * MiB, `root filesystem ${rootBytes} bytes does not fill the disk`);
  assert.equal(caps[1].trim(), `/usr/bin/ping ${rootfs.pingCapability}`);
  deployed = disk;
});

// The same deploy installed grub-efi too (\EFI\BOOT\BOOTX64.EFI on the ESP, no NVRAM entry):
// the disk boots under OVMF as well, here on AHCI SATA. (Not a second deploy under UEFI: the
// agent's UEFI boot entry is left to a hook, see README.)
const ovmfCode = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const ovmfVars = '/usr/share/OVMF/OVMF_VARS_4M.fd';
const uefiSkip = skip !== false ? skip : skipUnlessPresent(fs.existsSync(ovmfCode) && fs.existsSync(ovmfVars), 'needs OVMF (Debian package ovmf)');
test('the same disk boots alone under UEFI (OVMF, SATA disk): grub-efi from the removable path, the root and ping as under BIOS', { skip: uefiSkip, timeout: markerMs + 120_000 }, async (t) => {
  assert.ok(deployed !== undefined, 'the BIOS test deployed no disk');
  const vars = path.join(work, 'OVMF_VARS.fd');
  fs.copyFileSync(ovmfVars, vars);
  const boot = Date.now();
  const vm = await startVm({
    name: 'rootfs-deploy-debian-uefi-firstboot', memMiB: 1024, disks: [],
    extraArgs: [
      '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${ovmfCode}`, '-drive', `if=pflash,format=raw,unit=1,file=${vars}`,
      '-device', 'ahci,id=ahci', '-drive', `if=none,id=d0,file=${deployed},format=raw,cache=writeback`, '-device', 'ide-hd,drive=d0,bus=ahci.0',
    ],
  }, t);
  const caps = await vm.waitFor(/BOOTY-TEST-CAPS ([^\r\n]*)[\r\n]/, markerMs);
  const m = await vm.waitFor(/BOOTY-TEST-MARKER ([^\r\n]*)[\r\n]/, markerMs);
  t.diagnostic(`UEFI boot: marker ${((Date.now() - boot) / 1000).toFixed(0)} s after QEMU started: ${m[1].trim()}; ${caps[1].trim()}`);
  await vm.waitExit(120_000);
  assert.doesNotMatch(vm.output, /Kernel panic|kernel BUG|emergency mode|fsck.*(failed|UNEXPECTED)|Failed to mount/i, vm.tail(6000));
  const fields = Object.fromEntries(m[1].trim().split(/\s+/).map((kv) => kv.split('=') as [string, string]));
  assert.equal(fields.root, '/dev/sda3');
  assert.equal(fields.boot_disk, 'sda');
  assert.equal(Number(fields.disk_bytes), diskBytes);
  assert.equal(caps[1].trim(), `/usr/bin/ping ${rootfs.pingCapability}`);
  // it really was UEFI: the kernel found EFI runtime services
  assert.match(vm.output, /efi: EFI v\d|EFI stub|efi: ACPI/);
});
