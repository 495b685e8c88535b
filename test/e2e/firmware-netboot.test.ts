// The user journey as firmware does it: a VM with an empty disk powers on with real firmware
// (SeaBIOS, or OVMF with its own variable store), the NIC's iPXE ROM netboots, real dnsmasq
// answers with the README's recipe (kernel-cmdline/dnsmasq-pxe.conf), iPXE chains to
// `booty server`'s /ipxe and loads /boot/vmlinuz and /boot/booty.cpio.zst over HTTP; the agent
// deploys a real Debian 12 image, grows it and reboots. At the next power-on iPXE asks /ipxe
// again, gets `exit` (the one-shot deploy is consumed) and the firmware falls through to the disk,
// whose Debian prints its marker.
//   (bios)  SeaBIOS, virtio disk, the msdos/BIOS plain ext4 image as gzip: nothing is written to
//           NVRAM. This is also deploy-debian's scenario (c) (plain ext4 image, gzip, virtio, a
//           4 GiB disk), with its checks: the grown partition and ext4 on the host, no LVM touched,
//           and the marker of the disk booting alone with a root filesystem of about 4 GiB.
//   (uefi)  OVMF, SATA (AHCI) disk, the GPT/ESP image, bootOrder network-first: booty writes a
//           Boot#### for \EFI\debian\grubx64.efi; the next boot goes to iPXE first, which exits,
//           then to booty's entry: the booted Debian prints `efibootmgr -v` (the real tool reading
//           what booty wrote) and BootCurrent names booty's entry.
//   (uefi disk-first) the same with bootOrder disk-first: the next boot goes to the disk directly.
// Timings (power-on to iPXE, kernel, agent, first image byte, reboot; second boot to marker) go to
// the test's diagnostics and .cache/test-logs/firmware-netboot-timings.json.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureInitramfs } from '../helpers/initramfs-build.ts';
import { QemuNetLab } from '../helpers/qemu-netns-lab.ts';
import { ConsoleClock, dnsmasqPxeRecipe, IPXE_ROM_E1000, newVarsFile, OVMF_CODE, OVMF_VARS, powerOn, type Firmware } from '../helpers/firmware-netboot.ts';
import { logDir } from '../helpers/qemu.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import { ensureTestImage, type TestImage } from '../helpers/test-image.ts';
import { ext4AtOffset } from '../helpers/disk-file-layout.ts';
import { assertGrownMarker, assertPartitionGrown, markerFields } from '../helpers/grown-debian-disk.ts';
import { decodeLoadOption, describePath, encodeLoadOption, filePathNode, hardDriveNode } from '../../src/uefi/load-option.ts';

const isRoot = process.getuid?.() === 0;
const have = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const missing = [
  ...['qemu-system-x86_64', 'dnsmasq', 'debootstrap', 'mcopy', 'mkfs.vfat', 'zstd', 'sfdisk', 'dumpe2fs', 'losetup'].filter((c) => !have(c)),
  ...[OVMF_CODE, OVMF_VARS, IPXE_ROM_E1000].filter((f) => !fs.existsSync(f)),
];
const skip = !isRoot ? skipUnlessPresent(false, 'needs root (network namespaces, tap, loop devices)')
  : skipUnlessPresent(missing.length === 0, `missing: ${missing.join(', ')} (bash scripts/host-deps.sh)`);

const bootMs = 15 * 60_000; // a generous bound for TCG on a busy machine, not a timing assertion
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-firmware-e2e-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
let bootDir = '';
const timings: Record<string, Record<string, number>> = {};

before(async () => {
  if (skip !== false) return;
  ({ dir: bootDir } = await ensureInitramfs());
});

const deployMarks = {
  ipxe: /iPXE \d/,
  chained: /booty: [0-9a-f-]{17}: deploy/,
  kernel: /Linux version \d/,
  init: /\/init: node .* started/,
  firstByte: /deploy: format /,
  written: /deploy: wrote \d+ bytes/,
  grown: /grow: /,
  reboot: /reboot: Restarting system/,
};
const bootMarks = { ipxe: /iPXE \d/, exitScript: /booting from the local disk/, kernel: /Linux version \d/, marker: /BOOTY-TEST-MARKER/ };

interface Journey {
  lab: QemuNetLab; mac: string; disk: string; vars?: string; image: TestImage; deployLog: string; bootLog: string;
  /** bootLog without the kernel's log lines, which can cut the guest's marker lines in two */
  bootUserLog: string;
  /** the server's record of the deploy's result; the text after the marker of the second power-on */
  result: Record<string, unknown>; marker: string;
  /** what the server logged during the second power-on */
  bootServerLog: string;
}

async function journey(t: { after(fn: () => unknown): void; diagnostic(s: string): void }, o: {
  name: string; firmware: Firmware; bus: 'virtio' | 'sata'; kind: 'plain' | 'uefi'; prefix: string; mac: string;
  bootOrder?: 'network-first' | 'disk-first';
  /** the image file served: zstd (default) or gzip */
  form?: 'zst' | 'gz';
  /** default 3 GiB */
  diskBytes?: number;
}): Promise<Journey> {
  const image = await ensureTestImage(o.kind);
  const lab = new QemuNetLab(o.prefix);
  t.after(() => lab.close());
  await lab.startDnsmasq({ extraArgs: dnsmasqPxeRecipe(lab.serverUrl), routerAdvertisements: true });
  await lab.startServer(['--boot-dir', bootDir]);
  const form = o.form ?? 'zst';
  const url = lab.addImage(image[form]);
  lab.setAction(o.mac, {
    action: 'deploy', image: url, sha256: image.sha256[form], grow: { partition: 'last' }, after: 'reboot',
    ...(o.bootOrder === undefined ? {} : { bootOrder: o.bootOrder }),
  });
  const disk = path.join(work, `${o.name}.img`);
  fs.writeFileSync(disk, '');
  fs.truncateSync(disk, o.diskBytes ?? 3 * 2 ** 30);
  const vars = o.firmware === 'uefi' ? newVarsFile(work, o.name) : undefined;
  const machine = { firmware: o.firmware, disk, diskBus: o.bus, netns: lab.ns, tap: lab.tap, mac: o.mac, ...(vars === undefined ? {} : { varsFile: vars }) } as const;

  // power-on 1: netboot into booty, deploy, grow, reboot
  const vm1 = await powerOn({ ...machine, name: `${o.name}-deploy` }, t);
  const c1 = new ConsoleClock(vm1, deployMarks);
  const exit1 = await vm1.waitExit(bootMs);
  const t1 = c1.stop();
  assert.equal(exit1.code, 0, vm1.tail());
  assert.doesNotMatch(vm1.output, /BOOTY FAILED|Kernel panic/, vm1.tail());
  // (iPXE's own lines reach the serial console under OVMF; under SeaBIOS without a display they may not: the server's log proves the chain)
  for (const k of ['kernel', 'init', 'firstByte', 'reboot']) assert.ok(t1[k] !== undefined, `power-on 1 shows ${k} (${deployMarks[k as keyof typeof deployMarks]}); log ${vm1.logFile}`);
  // iPXE really fetched booty's kernel and initramfs from the server over HTTP
  assert.match(lab.serverLog, /GET \/ipxe\b/);
  assert.match(lab.serverLog, /GET \/boot\/vmlinuz/);
  assert.match(lab.serverLog, /GET \/boot\/booty\.cpio\.zst/);
  assert.match(lab.dnsmasqLog, /tags: ipxe/, 'dnsmasq saw iPXE (option 175) and sent the /ipxe URL');
  const m = await lab.waitForMachine(o.mac, (x) => x.result !== undefined);
  assert.equal((m.result as { ok: boolean }).ok, true, JSON.stringify(m.result));

  // power-on 2: iPXE asks again, gets exit (or, disk-first, is not asked), the disk boots
  const serverMark = lab.serverLog.length;
  const vm2 = await powerOn({ ...machine, name: `${o.name}-boot` }, t);
  const c2 = new ConsoleClock(vm2, bootMarks);
  const marker = await vm2.waitForUser(/BOOTY-TEST-MARKER[^\r\n]*(?=[\r\n])/, bootMs);
  await vm2.waitExit(5 * 60_000).catch(() => vm2.kill());
  const t2 = c2.stop();
  assert.match(marker[0], new RegExp(`variant=${o.kind}`));
  const rootfs = Number(/rootfs_bytes=(\d+)/.exec(marker[0])?.[1]);
  assert.ok(rootfs > 2.5 * 2 ** 30, `the root filesystem grew past the image's 2 GiB: ${marker[0]}`);
  timings[o.name] = Object.fromEntries([...Object.entries(t1).map(([k, v]) => [`deploy.${k}`, v]), ...Object.entries(t2).map(([k, v]) => [`boot.${k}`, v])]);
  t.diagnostic(`${o.name} timings (s since power-on): ${JSON.stringify(timings[o.name])}`);
  fs.mkdirSync(logDir, { recursive: true });
  const file = path.join(logDir, 'firmware-netboot-timings.json');
  let earlier: Record<string, unknown> = {};
  try { earlier = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>; } catch { /* first run */ }
  fs.writeFileSync(file, JSON.stringify({ ...earlier, ...timings }, null, 2));
  return {
    lab, mac: o.mac, disk, vars, image, deployLog: vm1.output, bootLog: vm2.output, bootUserLog: vm2.userOutput, bootServerLog: lab.serverLog.slice(serverMark),
    result: m.result as Record<string, unknown>, marker: marker[0].slice(marker[0].indexOf('BOOTY-TEST-MARKER') + 'BOOTY-TEST-MARKER'.length),
  };
}

/** The efibootmgr -v lines the booted Debian printed (BOOTY-EFI prefix). */
function efibootmgrLines(log: string): string[] {
  return [...log.matchAll(/BOOTY-EFI ([^\r\n]*)\r*\n/g)].map((x) => x[1].trim());
}

test('(bios) SeaBIOS + iPXE ROM + dnsmasq recipe -> /ipxe -> booty deploys the plain ext4 image (gzip) to a virtio disk and grows it; next power-on: /ipxe says exit, the disk boots alone with a root filesystem of about 4 GiB', { skip, timeout: 2 * bootMs }, async (t) => {
  const diskBytes = 4 * 2 ** 30;
  const j = await journey(t, { name: 'fw-bios', firmware: 'bios', bus: 'virtio', kind: 'plain', prefix: '10.233.1', mac: '52:54:00:f1:00:01', form: 'gz', diskBytes });
  assert.match(j.deployLog, /boot entry: BIOS machine \(no \/sys\/firmware\/efi\): nothing to write/);
  assert.match(j.bootServerLog, /GET \/ipxe\/52-54-00-f1-00-01/, 'the second power-on netboots first and asks /ipxe for its script (exit)');
  // deploy-debian's (c): the plain ext4 image as gzip onto virtio, grown offline, no LVM touched
  const out = j.deployLog;
  assert.doesNotMatch(out, /BOOTY FAILED|Kernel panic|kernel BUG|Oops:|Call Trace/, out.slice(-6000));
  assert.match(out, /target disk: \/dev\/vda/);
  assert.match(out, /deploy: format gzip/);
  assert.match(out, /deploy: wrote .* \(verified\)/);
  assert.match(out, /grow: \/dev\/vda2 holds an ext2\/3\/4 filesystem/);
  assert.match(out, /grow: e2fsck -f -y \S+, then resize2fs \(offline, initramfs tools\)/, 'ext4 grown offline');
  assert.match(out, /grow: done \(partition \d .* -> /);
  assert.match(out, /reboot: Restarting system/);
  assert.doesNotMatch(out, /volume group|lvm /i, 'an image without LVM never touches LVM');
  assert.equal(j.result.sha256, j.image.sha256.gz, 'the sha256 of the bytes as served');
  assert.equal(j.result.bytes, j.image.size);
  const part = assertPartitionGrown(j.disk, j.image, diskBytes);
  const facts = ext4AtOffset(j.disk, part.start * 512, part.size * 512);
  assert.ok(facts.bytes > 3.6 * 2 ** 30 && facts.bytes <= part.size * 512, `ext4 ${facts.bytes} bytes in a ${part.size * 512}-byte partition`);
  assert.equal(facts.state, 'clean');
  assert.doesNotMatch(j.bootLog, /Kernel panic|kernel BUG|emergency mode|fsck.*(failed|UNEXPECTED)/i, j.bootLog.slice(-6000));
  const marker = markerFields(j.marker);
  assertGrownMarker(marker, j.image, 'vda', diskBytes);
  assert.equal(marker.root, '/dev/vda2');
});

test('(uefi) OVMF + SATA + e1000 iPXE: booty writes a Boot#### for the ESP\'s grub; network-first: iPXE exits, booty\'s entry boots', { skip, timeout: 2 * bootMs }, async (t) => {
  const j = await journey(t, { name: 'fw-uefi-netfirst', firmware: 'uefi', bus: 'sata', kind: 'uefi', prefix: '10.233.2', mac: '52:54:00:f1:00:02' });
  const wrote = /boot entry: wrote Boot([0-9A-F]{4}) "Debian \(booty, sda\)" -> \\EFI\\debian\\grubx64\.efi on \/dev\/sda1 \(grub\)/.exec(j.deployLog);
  assert.ok(wrote !== null, 'the agent wrote a boot entry');
  const num = wrote[1];
  // the real efibootmgr in the booted OS reads booty's entry as booty meant it
  const efi = efibootmgrLines(j.bootUserLog);
  t.diagnostic(`efibootmgr -v in the deployed OS:\n${efi.join('\n')}`);
  assert.ok(efi.includes(`BootCurrent: ${num}`), `the firmware booted booty's entry Boot${num}`);
  const esp = j.image.espPartUuid!.toLowerCase();
  assert.ok(efi.some((l) => l.startsWith(`Boot${num}* Debian (booty, sda)`) && l.includes(`HD(1,GPT,${esp},0x800,0x40000)/File(\\EFI\\debian\\grubx64.efi)`)),
    `efibootmgr -v shows Boot${num} with the ESP's GUID, start and size and grub's path`);
  const order = /BootOrder: ([0-9A-F,]+)/.exec(efi.join('\n'))?.[1].split(',') ?? [];
  const pos = order.indexOf(num);
  assert.ok(pos > 0, `network entries stay before booty's (BootOrder ${order.join(',')})`);
  for (const n of order.slice(0, pos)) assert.ok(efi.some((l) => l.startsWith(`Boot${n}`) && /MAC\(|PXE|HTTP/.test(l)), `Boot${n} before booty's is a network entry`);
  assert.match(j.bootServerLog, /GET \/ipxe\/52-54-00-f1-00-02/, 'the second power-on went to iPXE first');
  // an entry efibootmgr made for the same ESP and loader: booty's encoder gives the same bytes
  const fixture = /BOOTY-EFI-FIXTURE (\S+) ([0-9a-f]+)/.exec(j.bootUserLog);
  assert.ok(fixture !== null, 'the booted OS printed efibootmgr\'s own entry');
  const raw = Buffer.from(fixture[2], 'hex');
  t.diagnostic(`efibootmgr -c wrote (efivarfs file, ${raw.length} bytes): ${fixture[2]}`);
  assert.equal(raw.readUInt32LE(0), 7, 'NV|BS|RT, as booty writes');
  const theirs = decodeLoadOption(raw.subarray(4));
  assert.equal(theirs.description, 'booty-fixture');
  assert.equal(describePath(theirs), `HD(1,GPT,${esp},0x800,0x40000)/File(\\EFI\\debian\\grubx64.efi)`);
  const ours = encodeLoadOption({
    attributes: theirs.attributes, description: 'booty-fixture', optionalData: theirs.optionalData,
    filePath: [hardDriveNode({ partitionNumber: 1, startLba: 0x800n, sizeLba: 0x40000n, partitionGuid: esp }), filePathNode('\\EFI\\debian\\grubx64.efi')],
  });
  assert.equal(ours.toString('hex'), raw.subarray(4).toString('hex'), 'booty encodes what efibootmgr writes, byte for byte');
  assert.match(j.bootLog, /booty: 52-54-00-f1-00-02: .*booting from the local disk/, 'which got exit');
});

test('(uefi disk-first) the next power-on goes straight to booty\'s entry, no netboot', { skip, timeout: 2 * bootMs }, async (t) => {
  const j = await journey(t, { name: 'fw-uefi-diskfirst', firmware: 'uefi', bus: 'sata', kind: 'uefi', prefix: '10.233.3', mac: '52:54:00:f1:00:03', bootOrder: 'disk-first' });
  const num = /boot entry: wrote Boot([0-9A-F]{4})/.exec(j.deployLog)?.[1];
  assert.ok(num !== undefined);
  const efi = efibootmgrLines(j.bootUserLog);
  t.diagnostic(`efibootmgr -v in the deployed OS:\n${efi.join('\n')}`);
  assert.ok(efi.includes(`BootCurrent: ${num}`));
  assert.match(efi.join('\n'), new RegExp(`BootOrder: ${num},`));
  assert.doesNotMatch(j.bootLog, /iPXE \d/, 'no netboot before the disk');
  assert.doesNotMatch(j.bootServerLog, /GET \/ipxe/, 'the server was not asked');
});
