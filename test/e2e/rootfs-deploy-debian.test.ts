// A rootfs tarball deployed by the real agent: QEMU boots booty's kernel + initramfs with an empty
// 3 GiB disk (SeaBIOS), dnsmasq in a network namespace gives the lease, a real `booty server`
// serves the action and the Debian 12 tarball (scripts/build-test-rootfs.sh: debootstrap with a
// kernel, grub-pc-bin, grub-efi-amd64-bin, ping with its capability, packed by GNU tar --xattrs).
// The agent lays out the default GPT (BIOS boot, ESP, ext4 root on the rest), makes the
// filesystems, extracts, writes fstab, installs grub for BIOS and UEFI through chroot, reboots.
// Then the disk boots ALONE (SeaBIOS -> grub -> Debian), and the image's units report the root
// filesystem filling the disk and `getcap /usr/bin/ping` (the xattr survived every step).
// The same again under UEFI (OVMF, a 6 GiB SATA disk, the agent's Boot#### entry), then a
// capture of that disk by the agent, compared entry by entry with the tarball (round trip).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureInitramfs, type BuiltInitramfs } from '../helpers/initramfs-build.ts';
import { startVm, TEST_DISK_CACHE } from '../helpers/qemu.ts';
import { QemuNetLab } from '../helpers/qemu-netns-lab.ts';
import { ensureTestRootfs, type TestRootfs } from '../helpers/test-rootfs.ts';
import { describe, walk } from '../helpers/rootfs-tree.ts';
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
  const [built, tree] = await Promise.all([ensureInitramfs(), ensureTestRootfs()]);
  // this file runs for 20-30 min under TCG; another checkout's build in a shared BOOTY_CACHE
  // prunes builds older than 10 min (initramfs-build.ts), so the VMs boot a private copy
  const kernel = path.join(work, 'vmlinuz');
  const initrd = path.join(work, path.basename(built.initrd));
  fs.copyFileSync(built.kernel, kernel);
  fs.copyFileSync(built.initrd, initrd);
  [initramfs, rootfs] = [{ ...built, kernel, initrd }, tree];
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
    `boot loaders done by ${t2.toFixed(1)} s (${(t2 - t1).toFixed(0)} s, the tarball's initrd kept); QEMU wall time ${wall.toFixed(0)} s; tarball ${(rootfs.bytes / MiB).toFixed(0)} MiB, tree ${(rootfs.treeBytes / MiB).toFixed(0)} MiB`);

  // the table as sfdisk reads it from the disk file
  const table = (JSON.parse(execFileSync('sfdisk', ['--json', disk], { encoding: 'utf8' })) as { partitiontable: { label: string; partitions: Array<{ start: number; size: number; type: string }> } }).partitiontable;
  assert.equal(table.label, 'gpt');
  assert.deepEqual(table.partitions.map((p) => p.type), ['21686148-6449-6E6F-744E-656564454649', 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', '0FC63DAF-8483-4772-8E79-3D69D8477DE4']);

  // the disk alone: SeaBIOS -> grub (core image in the BIOS boot partition) -> Debian
  const boot = Date.now();
  const vm2 = await startVm({ name: 'rootfs-deploy-debian-bios-firstboot', memMiB: 1024, disks: [{ path: disk, bus: 'virtio' }] }, t);
  const caps = await vm2.waitFor(/BOOTY-TEST-CAPS ([^\r\n]*)[\r\n]/, markerMs);
  const m = await vm2.waitForUser(/BOOTY-TEST-MARKER ([^\r\n]*)[\r\n]/, markerMs);
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
// the disk boots under OVMF as well, here on AHCI SATA, with a fresh variable store (a disk
// deployed on a BIOS machine, moved to a UEFI one). The deploy under UEFI is the next test.
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
      '-device', 'ahci,id=ahci', '-drive', `if=none,id=d0,file=${deployed},format=raw,cache=${TEST_DISK_CACHE}`, '-device', 'ide-hd,drive=d0,bus=ahci.0',
    ],
  }, t);
  const caps = await vm.waitFor(/BOOTY-TEST-CAPS ([^\r\n]*)[\r\n]/, markerMs);
  const m = await vm.waitForUser(/BOOTY-TEST-MARKER ([^\r\n]*)[\r\n]/, markerMs);
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

// The deploy itself under UEFI: the agent boots under OVMF (QEMU loads booty's kernel through the
// firmware, so the agent sees /sys/firmware/efi and writes its Boot#### entry into this machine's
// variable store) and lays the tarball onto an empty 6 GiB AHCI SATA disk. The tarball carries an
// initrd for its kernel, so the deploy keeps it (no update-initramfs). The disk then boots alone
// under OVMF with the same variable store. A copy of the disk taken before that boot is what the
// capture test below archives (the first boot writes its own files: journal, random seed...).
const uefiDiskBytes = 6 * GiB;
let uefiDeployed: string | undefined;
test('a Debian rootfs tarball onto an empty 6 GiB SATA disk by the agent under UEFI (OVMF); the disk then boots alone, root filling the disk, ping keeps its capability', { skip: uefiSkip, timeout: deployMs + markerMs + 180_000 }, async (t) => {
  const mac = '52:54:00:d0:00:43';
  const lab = new QemuNetLab('10.231.43');
  t.after(() => lab.close());
  await lab.startDnsmasq();
  await lab.startServer();
  const url = lab.addImage(rootfs.tarball);
  lab.setAction(mac, { action: 'deploy-rootfs', rootfs: url, sha256: rootfs.sha256, after: 'reboot', onError: 'poweroff' });
  const disk = path.join(work, 'rootfs-uefi.img');
  fs.writeFileSync(disk, '');
  fs.truncateSync(disk, uefiDiskBytes);
  const vars = path.join(work, 'uefi-machine-OVMF_VARS.fd');
  fs.copyFileSync(ovmfVars, vars);
  const firmware = ['-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${ovmfCode}`, '-drive', `if=pflash,format=raw,unit=1,file=${vars}`];
  const sata = ['-device', 'ahci,id=ahci', '-drive', `if=none,id=d0,file=${disk},format=raw,cache=${TEST_DISK_CACHE}`, '-device', 'ide-hd,drive=d0,bus=ahci.0'];

  const started = Date.now();
  const vm = await startVm({
    name: 'rootfs-deploy-debian-uefi', kernel: initramfs.kernel, initrd: initramfs.initrd, memMiB: 1024,
    append: `console=ttyS0 quiet ${lab.agentArgs(mac)} booty.countdown=0`,
    disks: [], nic: { tap: lab.tap, netns: lab.ns, mac }, extraArgs: [...firmware, ...sata],
  }, t);
  const exit = await vm.waitExit(deployMs);
  const wall = (Date.now() - started) / 1000;
  const out = vm.output;
  assert.equal(exit.code, 0, vm.tail(8000));
  assert.doesNotMatch(out, /BOOTY FAILED|Kernel panic|kernel BUG|Oops:|Call Trace/, vm.tail(8000));
  assert.match(out, /booty: inventory: .*, uefi, /, 'the agent ran on UEFI firmware (its inventory says so)');
  assert.match(out, /rootfs: partitioning \/dev\/sda \(gpt\): 1: bios-boot 1 MiB, 2: esp vfat \/boot\/efi 512 MiB, 3: linux ext4 \/ 5629 MiB/);
  assert.match(out, /rootfs: extracted \d+ files, .* \(zstd\); sha256 [0-9a-f]{64} \(verified\)/);
  assert.match(out, new RegExp(`rootfs: no update-initramfs: the tarball's initrd kept \\(initrd\\.img-${rootfs.kernel.replaceAll('.', '\\.')}; MODULES=list;`));
  assert.doesNotMatch(out, /rootfs: update-initramfs/);
  assert.match(out, /rootfs: grub-install --target=i386-pc \/dev\/sda/);
  assert.match(out, /rootfs: grub-install --target=x86_64-efi --efi-directory=\/boot\/efi --removable --no-nvram/);
  assert.match(out, /rootfs: grub\.cfg written \(.*; root by UUID\)/);
  const entry = /boot entry: wrote Boot([0-9A-F]{4}) "([^"]*\(booty, sda\))" -> (\S+) on \/dev\/sda2/.exec(out);
  assert.ok(entry, `the agent wrote the machine's Boot#### entry:\n${vm.tail(6000)}`);
  assert.equal(entry[3], '\\EFI\\BOOT\\BOOTX64.EFI');
  assert.match(out, /reboot: Restarting system/);
  const t0 = stamp(out, /booty: rootfs: partitioning/);
  const t1 = stamp(out, /booty: rootfs: extracted/);
  const t2 = stamp(out, /booty: rootfs: \/dev\/sda deployed in/);
  t.diagnostic(`TCG, UEFI: partitioning at ${t0.toFixed(1)} s after kernel start, tree extracted by ${t1.toFixed(1)} s (${(t1 - t0).toFixed(0)} s incl. mkfs), ` +
    `boot loaders done by ${t2.toFixed(1)} s (${(t2 - t1).toFixed(0)} s, no update-initramfs); QEMU wall time ${wall.toFixed(0)} s; Boot${entry[1]} "${entry[2]}" -> ${entry[3]}`);

  const table = (JSON.parse(execFileSync('sfdisk', ['--json', disk], { encoding: 'utf8' })) as { partitiontable: { label: string; partitions: Array<{ type: string }> } }).partitiontable;
  assert.equal(table.label, 'gpt');
  assert.deepEqual(table.partitions.map((p) => p.type), ['21686148-6449-6E6F-744E-656564454649', 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', '0FC63DAF-8483-4772-8E79-3D69D8477DE4']);
  uefiDeployed = path.join(work, 'rootfs-uefi-as-deployed.img');
  execFileSync('cp', ['--sparse=always', disk, uefiDeployed]);

  // the disk alone, same machine (same variable store): OVMF -> grub-efi -> Debian
  const boot = Date.now();
  const vm2 = await startVm({ name: 'rootfs-deploy-debian-uefi-firstboot', memMiB: 1024, disks: [], extraArgs: [...firmware, ...sata] }, t);
  const caps = await vm2.waitFor(/BOOTY-TEST-CAPS ([^\r\n]*)[\r\n]/, markerMs);
  const m = await vm2.waitForUser(/BOOTY-TEST-MARKER ([^\r\n]*)[\r\n]/, markerMs);
  const loaded = /BdsDxe: loading (Boot[0-9A-F]{4}) "([^"]*)"/.exec(vm2.output);
  t.diagnostic(`UEFI first boot: marker ${((Date.now() - boot) / 1000).toFixed(0)} s after QEMU started: ${m[1].trim()}; ${caps[1].trim()}; firmware: ${loaded?.[0] ?? '(no BdsDxe line)'}`);
  await vm2.waitExit(120_000);
  assert.doesNotMatch(vm2.output, /Kernel panic|kernel BUG|emergency mode|fsck.*(failed|UNEXPECTED)|Failed to mount/i, vm2.tail(6000));
  const fields = Object.fromEntries(m[1].trim().split(/\s+/).map((kv) => kv.split('=') as [string, string]));
  assert.equal(fields.variant, 'rootfs');
  assert.equal(fields.root, '/dev/sda3');
  assert.equal(fields.boot_disk, 'sda');
  assert.equal(Number(fields.disk_bytes), uefiDiskBytes);
  const rootBytes = Number(fields.rootfs_bytes);
  assert.ok(rootBytes > 5.2 * GiB && rootBytes <= uefiDiskBytes - 514 * MiB, `root filesystem ${rootBytes} bytes does not fill the disk`);
  assert.equal(caps[1].trim(), `/usr/bin/ping ${rootfs.pingCapability}`);
  assert.match(vm2.output, /efi: EFI v\d|EFI stub|efi: ACPI/);
  // the firmware booted the entry the agent wrote into this machine's variable store
  assert.equal(loaded?.[1], `Boot${entry[1]}`, 'OVMF loaded the Boot#### entry booty wrote');
  // the kept initrd has no fsck helper (the tarball had no fstab when it was built): the
  // initramfs says so, and systemd checks the root instead (README, "The tarball's initramfs is kept")
  assert.match(vm2.output, /fsck not present, so skipping root file system/);
  assert.match(vm2.output, /Finished systemd-fsck-root\.service/);
});

// Round trip: the agent captures the disk it deployed under UEFI (the copy taken before its first
// boot) as a plain tar, and GNU tar's extraction of that capture is compared entry by entry
// (type, content, owner, mode, mtime, links, device numbers, xattrs incl. security.capability)
// with GNU tar's extraction of the tarball that was deployed. The only differences allowed are
// the ones the deploy makes, each named below with the step that makes it.
const deployWrites: Array<{ path: RegExp; why: string; fields?: string[] }> = [
  { path: /^etc\/fstab$/, why: 'written from the layout by UUID (the tarball has none)' },
  { path: /^etc\/machine-id$/, why: 'a fresh machine-id per deploy (the tarball\'s is empty)' },
  { path: /^lost\+found$/, why: 'made by mkfs.ext4 on the new root filesystem' },
  { path: /^boot\/grub(\/.*)?$/, why: 'grub-install (i386-pc and x86_64-efi modules, fonts, grubenv) and update-grub (grub.cfg)' },
  { path: /^boot\/efi\/EFI(\/.*)?$/, why: 'grub-install --removable: \\EFI\\BOOT\\BOOTX64.EFI and grub.cfg on the ESP' },
  { path: /^boot\/efi$/, why: 'the ESP\'s vfat root directory mounted there: vfat has no owner, mode or mtime of its own' },
  { path: /^(etc|boot)$/, why: 'their directories\' mtime: fstab, machine-id and /boot/grub were written into them after the extraction', fields: ['mtime'] },
];

test('capture round trip: the agent archives the disk it deployed (tar); GNU tar extracts the tree that was deployed, differing only where the deploy wrote', { skip: uefiSkip, timeout: 15 * 60_000 }, async (t) => {
  assert.ok(uefiDeployed !== undefined, 'the UEFI deploy test deployed no disk');
  const mac = '52:54:00:d0:00:44';
  const lab = new QemuNetLab('10.231.44');
  t.after(() => lab.close());
  await lab.startDnsmasq();
  await lab.startServer();
  const name = 'captured-rootfs.tar';
  lab.setAction(mac, { action: 'capture', upload: `${lab.serverUrl}/images/${name}`, format: 'tar', after: 'poweroff', onError: 'poweroff' });
  const started = Date.now();
  const vm = await startVm({
    name: 'rootfs-capture-roundtrip', kernel: initramfs.kernel, initrd: initramfs.initrd, memMiB: 768,
    append: `console=ttyS0 quiet ${lab.agentArgs(mac)} booty.countdown=0`,
    disks: [{ path: uefiDeployed }], nic: { tap: lab.tap, netns: lab.ns, mac },
  }, t);
  const exit = await vm.waitExit(12 * 60_000);
  const wall = (Date.now() - started) / 1000;
  const out = vm.output;
  assert.equal(exit.code, 0, vm.tail(6000));
  assert.doesNotMatch(out, /BOOTY FAILED|Kernel panic|kernel BUG/, vm.tail(6000));
  assert.match(out, /capture: root filesystem \/dev\/vda3 \(ext4\) mounted read-only/);
  assert.match(out, /capture: \/dev\/vda2 \(vfat\) mounted read-only at \/boot\/efi/);
  const line = /\[\s*(\d+\.\d+)\] booty: capture: archived (\d+) files \(([^)]+)\)/.exec(out);
  assert.ok(line, 'the agent logged what it archived');
  t.diagnostic(`TCG: capture of the deployed disk: ${line[2]} files (${line[3]}), done ${line[1]} s after kernel start; QEMU wall time ${wall.toFixed(0)} s`);
  const stored = path.join(lab.dataDir, 'images', name);
  assert.equal((lab.machine(mac)?.result as Record<string, unknown> | undefined)?.ok, true);

  const deployedTree = path.join(work, 'tree-deployed');
  const capturedTree = path.join(work, 'tree-captured');
  fs.mkdirSync(deployedTree);
  fs.mkdirSync(capturedTree);
  const gnuTar = `tar --xattrs --xattrs-include='*' --numeric-owner -xpf -`;
  execFileSync('bash', ['-euo', 'pipefail', '-c', `zstd -dc -q ${rootfs.tarball} | ${gnuTar} -C ${deployedTree}`]);
  execFileSync('bash', ['-euo', 'pipefail', '-c', `${gnuTar} -C ${capturedTree} < ${stored}`]);

  const before = new Set(walk(deployedTree));
  const after = new Set(walk(capturedTree));
  // a rule without `fields` allows anything at its paths (added, missing, any field changed)
  const allowed = (rel: string, what: string) => deployWrites.find((w) => w.path.test(rel) && (w.fields === undefined || w.fields.includes(what)));
  const unexpected: string[] = [];
  const seen = new Map<string, string[]>();
  const note = (rel: string, what: string) => {
    const w = allowed(rel, what.replace(/^changed /, ''));
    if (w === undefined) unexpected.push(`${rel}: ${what}`);
    else seen.set(w.why, [...(seen.get(w.why) ?? []), `${rel} ${what}`]);
  };
  for (const rel of before) if (!after.has(rel)) note(rel, 'missing from the capture');
  for (const rel of after) if (!before.has(rel)) note(rel, 'added');
  for (const rel of ['', ...before]) {
    if (!after.has(rel) && rel !== '') continue;
    const a = describe(deployedTree, rel) as Record<string, unknown>;
    const b = describe(capturedTree, rel) as Record<string, unknown>;
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) note(rel, `changed ${k}`);
    }
  }
  t.diagnostic(`round trip: ${before.size} entries deployed, ${after.size} captured; expected differences: ${[...seen].map(([why, l]) => `${l.length} (${why})`).join('; ')}`);
  assert.deepEqual(unexpected, [], 'differences the deploy does not explain');
  assert.ok(before.size > 5000, `a Debian tree has thousands of entries (${before.size})`);
  // the differences that must be there, or the comparison proved nothing
  assert.ok(after.has('etc/fstab') && !before.has('etc/fstab'));
  assert.ok(after.has('boot/efi/EFI/BOOT/BOOTX64.EFI'));
  assert.ok(after.has('boot/grub/grub.cfg'));
  assert.notEqual(fs.readFileSync(path.join(capturedTree, 'etc/machine-id'), 'utf8'), fs.readFileSync(path.join(deployedTree, 'etc/machine-id'), 'utf8'));
  // what the deploy must not have changed, checked by name as well
  const kernelFiles = [`boot/vmlinuz-${rootfs.kernel}`, `boot/initrd.img-${rootfs.kernel}`];
  for (const rel of [...kernelFiles, 'usr/bin/ping']) assert.deepEqual(describe(capturedTree, rel), describe(deployedTree, rel), rel);
  assert.equal(execFileSync('getcap', [path.join(capturedTree, 'usr/bin/ping')], { encoding: 'utf8' }).trim(), `${path.join(capturedTree, 'usr/bin/ping')} ${rootfs.pingCapability}`);
});
