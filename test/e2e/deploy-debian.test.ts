// The whole product on the real Debian 12 test image (scripts/build-test-image.sh): a VM boots our
// kernel + initramfs with an empty 4 GiB disk, gets its lease from real dnsmasq in a network
// namespace, fetches its action from a real `booty server`, deploys the 2 GiB image (sha256
// checked), grows the last partition, the LVM PV / root LV and ext4 (offline) to the disk, and
// reboots (-no-reboot ends QEMU). Then:
// the grown layout is checked on the host from the disk file (partition table; the LV's place
// from the LVM metadata; the ext4 superblock: size and state "clean"), and the disk boots ALONE
// in QEMU, where the Debian inside reports through its marker unit a root filesystem of about
// 4 GiB minus /boot (the image's was < 2 GiB). Four scenarios here:
//   (a) virtio disk, LVM image (zstd)   (b) NVMe disk, LVM image (zstd)
//   (c) virtio disk, plain ext4 image (gzip): deployed through the firmware's own netboot in
//       firmware-netboot.test.ts (bios), which makes the same checks of the same deploy
//   (d) virtio disk, plain image as qcow2 made by qemu-img (zstd-compressed clusters)
//   (e) virtio disk, LVM image (zstd) pulled from a real OCI registry (Debian's docker-registry)
// About 2 minutes each under TCG.
// Timings (kernel start -> first byte written, kernel start -> reboot, boot to marker) are
// printed as test diagnostics.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureInitramfs, type BuiltInitramfs } from '../helpers/initramfs-build.ts';
import { startVm, type DiskSpec } from '../helpers/qemu.ts';
import { QemuNetLab } from '../helpers/qemu-netns-lab.ts';
import { ensureTestImage, testImageDir, type TestImage } from '../helpers/test-image.ts';
import { ext4AtOffset, ext4FileAtOffset, lvInPv } from '../helpers/disk-file-layout.ts';
import { assertGrownMarker as assertGrownMarkerOf, assertPartitionGrown as assertPartitionGrownOf, markerFields } from '../helpers/grown-debian-disk.ts';
import { pushArtifact, startRegistry } from '../helpers/oci-registry.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const isRoot = process.getuid?.() === 0;
const have = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const missing = ['qemu-system-x86_64', 'qemu-img', 'docker-registry', 'dnsmasq', 'sfdisk', 'dumpe2fs', 'debugfs', 'losetup', 'zstd', 'debootstrap', 'curl'].filter((c) => !have(c));
const skip = !isRoot ? 'needs root (network namespaces, tap, loop devices)' : skipUnlessPresent(missing.length === 0, `missing: ${missing.join(', ')}`);

const GiB = 1024 ** 3;
const diskBytes = 4 * GiB;
// generous bounds for TCG on a busy 2-core machine, not timing assertions
const deployMs = 10 * 60_000;
const markerMs = 8 * 60_000;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-deploy-debian-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

let initramfs: BuiltInitramfs;
const images: Partial<Record<'lvm' | 'plain', TestImage>> = {};

before(async () => {
  if (skip !== false) return;
  initramfs = await ensureInitramfs();
  images.lvm = await ensureTestImage('lvm');
  images.plain = await ensureTestImage('plain');
});

function emptyDisk(name: string): string {
  const p = path.join(work, name);
  fs.writeFileSync(p, '');
  fs.truncateSync(p, diskBytes);
  return p;
}

/** Seconds since kernel start of the first agent log line matching re. */
function stamp(out: string, re: RegExp): number {
  const line = out.split('\n').find((l) => re.test(l));
  const m = line === undefined ? null : /^\[\s*(\d+\.\d+)\] booty:/.exec(line.trim());
  if (m === null) throw new Error(`no timestamped console line matches ${re}`);
  return Number(m[1]);
}

async function waitForResult(lab: QemuNetLab, mac: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = lab.machine(mac);
    if (m?.result !== undefined) return m.result as Record<string, unknown>;
    if (Date.now() > deadline) throw new Error(`the server never got a result from ${mac}; last: ${JSON.stringify(m)?.slice(0, 3000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

interface Scenario {
  name: string;
  kind: 'lvm' | 'plain';
  /** how the image is served: its zstd or gzip file by booty server, a qcow2 made from the raw
   *  image by qemu-img, or the zstd file as the layer of an OCI artifact in a registry */
  form: 'zst' | 'gz' | 'qcow2' | 'oci';
  bus: NonNullable<DiskSpec['bus']>;
  prefix: string;
  mac: string;
  /** post-deploy settings for the action */
  post?: object;
}

/**
 * The raw image converted by qemu-img to a qcow2 with zstd-compressed clusters, and its sha256.
 * Cached beside the test images, keyed by what makes it: the raw image's sha256, qemu-img's
 * version and the conversion's arguments (compressing 2 GiB is CPU time every run would spend).
 */
function qcow2Of(image: TestImage): { file: string; sha256: string } {
  const args = ['convert', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd'];
  const version = execFileSync('qemu-img', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  const key = createHash('sha256').update(JSON.stringify([image.sha256.raw, version, args])).digest('hex').slice(0, 16);
  const dir = path.join(testImageDir(), 'qcow2');
  const file = path.join(dir, `debian-${image.kind}-${key}.qcow2`);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true });
    for (const f of fs.readdirSync(dir)) if (f.startsWith(`debian-${image.kind}-`) && !f.includes(key)) fs.rmSync(path.join(dir, f), { force: true });
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      execFileSync('qemu-img', [...args, image.raw, tmp]);
      fs.renameSync(tmp, file);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  return { file, sha256: execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0]! };
}

/** The image as the scenario serves it: its URL as the VM sees it and the sha256 of those bytes. */
async function serve(s: Scenario, image: TestImage, lab: QemuNetLab, t: { after(fn: () => unknown): void }): Promise<{ url: string; sha256: string; sha256InAction: boolean }> {
  switch (s.form) {
    case 'zst':
    case 'gz':
      return { url: lab.addImage(s.form === 'zst' ? image.zst : image.gz), sha256: image.sha256[s.form], sha256InAction: true };
    case 'qcow2': {
      const { file, sha256 } = qcow2Of(image);
      return { url: lab.addImage(file, 'debian.qcow2'), sha256, sha256InAction: true };
    }
    case 'oci': {
      // pushed to a registry on loopback, then served from the same storage by a second one
      // inside the lab's namespace, where the VM reaches it
      const dir = path.join(work, `${s.name}-registry`);
      const host = await startRegistry({ dir });
      const layer = fs.readFileSync(image.zst);
      await pushArtifact(host, 'os/debian', '12', [{ data: layer, mediaType: 'application/vnd.booty.disk.image.v1+zstd', title: 'debian.img.zst' }]);
      await host.close();
      const registry = await startRegistry({ dir, netns: { name: lab.ns, listen: `${s.prefix}.1:5000` } });
      t.after(() => registry.close());
      return { url: `oci+http://${s.prefix}.1:5000/os/debian:12`, sha256: image.sha256.zst, sha256InAction: false };
    }
  }
}

/** Deploy + grow + reboot; returns the disk file, the console and the timings. */
async function deployAndGrow(s: Scenario, t: { after(fn: () => unknown): void; diagnostic(m: string): void }): Promise<{ disk: string; out: string; image: TestImage }> {
  const image = images[s.kind]!;
  const lab = new QemuNetLab(s.prefix);
  t.after(() => lab.close());
  await lab.startDnsmasq();
  await lab.startServer();
  const served = await serve(s, image, lab, t);
  lab.setAction(s.mac, {
    action: 'deploy', image: served.url, ...(served.sha256InAction ? { sha256: served.sha256 } : {}), grow: { partition: 'last' }, after: 'reboot', onError: 'poweroff',
    ...(s.post === undefined ? {} : { post: s.post }),
  });
  const disk = emptyDisk(`${s.name}.img`);
  const started = Date.now();
  const vm = await startVm({
    name: `deploy-debian-${s.name}`, kernel: initramfs.kernel, initrd: initramfs.initrd, memMiB: 768,
    append: `console=ttyS0 quiet ${lab.agentArgs(s.mac)} booty.countdown=0`,
    disks: [{ path: disk, bus: s.bus }], nic: { tap: lab.tap, netns: lab.ns, mac: s.mac },
  }, t);
  const exit = await vm.waitExit(deployMs);
  const wall = (Date.now() - started) / 1000;
  const out = vm.output;
  assert.equal(exit.code, 0, vm.tail());
  assert.doesNotMatch(out, /BOOTY FAILED|Kernel panic|kernel BUG|Oops:|Call Trace/, vm.tail(6000));
  const devName = s.bus === 'nvme' ? '/dev/nvme0n1' : '/dev/vda';
  assert.match(out, new RegExp(`target disk: ${devName}`));
  assert.match(out, /deploy: wrote .* \(verified\)/);
  assert.match(out, /grow: e2fsck -f -y \S+, then resize2fs \(offline, initramfs tools\)/, 'ext4 grown offline');
  assert.match(out, /grow: done \(partition \d .* -> /);
  assert.match(out, /reboot: Restarting system/);

  const result = await waitForResult(lab, s.mac);
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.equal(result.sha256, served.sha256, 'the sha256 of the bytes as served (for OCI: the layer digest)');
  assert.equal(result.bytes, image.size);

  const firstByte = stamp(out, /booty: deploy: format /);
  const rebooting = stamp(out, /booty: step 7\/7: reboot/);
  const wrote = stamp(out, /booty: deploy: wrote \d+ bytes/);
  t.diagnostic(`${s.name}: kernel start -> first byte written ${firstByte.toFixed(1)} s; image written by ${wrote.toFixed(1)} s; ` +
    `grown and rebooting at ${rebooting.toFixed(1)} s after kernel start; QEMU wall time ${wall.toFixed(0)} s`);
  return { disk, out, image };
}

/** The last partition ends at the end of the 4 GiB disk (the MBR's, 1 MiB aligned). */
const assertPartitionGrown = (disk: string, image: TestImage) => assertPartitionGrownOf(disk, image, diskBytes);

/** Boots the deployed disk alone (BIOS -> GRUB -> Debian -> marker unit -> power off). */
async function bootDeployed(name: string, disk: string, bus: NonNullable<DiskSpec['bus']>, t: { after(fn: () => unknown): void; diagnostic(m: string): void }): Promise<Record<string, string>> {
  const started = Date.now();
  const vm = await startVm({ name: `deploy-debian-${name}-firstboot`, memMiB: 1024, disks: [{ path: disk, bus }] }, t);
  const m = await vm.waitForUser(/BOOTY-TEST-MARKER ([^\r\n]*)[\r\n]/, markerMs);
  const seconds = (Date.now() - started) / 1000;
  t.diagnostic(`${name}: the deployed Debian printed its marker ${seconds.toFixed(0)} s after QEMU started: ${m[1].trim()}`);
  await vm.waitExit(120_000);
  assert.doesNotMatch(vm.output, /Kernel panic|kernel BUG|emergency mode|fsck.*(failed|UNEXPECTED)/i, vm.tail(6000));
  return markerFields(m[1]);
}

/** The marker of a deployed 4 GiB disk: a root filesystem of about 4 GiB minus /boot. */
const assertGrownMarker = (fields: Record<string, string>, image: TestImage, bootDisk: string) => assertGrownMarkerOf(fields, image, bootDisk, diskBytes);

/** Host-side: the PV's metadata was rewritten, the root LV took every free extent, ext4 fills it and is clean. */
function assertLvmGrownOnHost(disk: string, image: TestImage, part: { start: number }): { offset: number; bytes: number } {
  const before = lvInPv(image.raw, image.rootPartition.startSector * 512, 'bootyvg', 'root');
  const lv = lvInPv(disk, part.start * 512, 'bootyvg', 'root');
  assert.ok(lv.seqno > before.seqno, `LVM metadata rewritten (seqno ${before.seqno} -> ${lv.seqno})`);
  assert.equal(lv.freeExtents, 0, 'the root LV took all the free space');
  assert.equal(lv.offset, before.offset, 'the LV still starts where it did');
  assert.ok(lv.bytes > 3.6 * GiB, `root LV ${lv.bytes} bytes`);
  const facts = ext4AtOffset(disk, part.start * 512 + lv.offset, lv.bytes);
  assert.equal(facts.bytes, lv.bytes, 'ext4 fills the LV');
  assert.equal(facts.state, 'clean');
  return { offset: part.start * 512 + lv.offset, bytes: lv.bytes };
}

test('(a) virtio disk, LVM image (zstd): deploy, grow, reboot; the disk then boots alone with a root filesystem of about 4 GiB', { skip, timeout: deployMs + markerMs + 120_000 }, async (t) => {
  const { disk, out, image } = await deployAndGrow({ name: 'virtio-lvm', kind: 'lvm', form: 'zst', bus: 'virtio', prefix: '10.231.21', mac: '52:54:00:d0:00:21' }, t);
  assert.match(out, /grow: activating volume group bootyvg/);
  assert.match(out, /grow: lvextend -l \+100%FREE \/dev\/bootyvg\/root/);
  assert.match(out, /grow: deactivated volume group bootyvg/, 'the VG is deactivated before the reboot');
  assertLvmGrownOnHost(disk, image, assertPartitionGrown(disk, image));
  const marker = await bootDeployed('virtio-lvm', disk, 'virtio', t);
  assertGrownMarker(marker, image, 'vda');
  assert.equal(marker.root, '/dev/mapper/bootyvg-root');
});

test('(b) NVMe disk, LVM image (zstd) with post-deploy settings: deploy, grow, configure, reboot; the NVMe disk then boots alone with a root filesystem of about 4 GiB', { skip, timeout: deployMs + markerMs + 120_000 }, async (t) => {
  const note = `deployed by booty to NVMe ${process.pid}\n`;
  const { disk, out, image } = await deployAndGrow({
    name: 'nvme-lvm', kind: 'lvm', form: 'zst', bus: 'nvme', prefix: '10.231.22', mac: '52:54:00:d0:00:22',
    post: { hostname: 'booty-nvme', files: { '/etc/booty-e2e-note': note } },
  }, t);
  assert.match(out, /loaded nvme/);
  assert.match(out, /grow: \/dev\/nvme0n1p2 holds an LVM2 physical volume/, 'partition names of NVMe disks (p2)');
  // with post-deploy settings the VG stays active for them, and is deactivated after them
  assert.doesNotMatch(out, /grow: deactivated volume group/);
  assert.match(out, /post-deploy: wrote \/etc\/hostname[\s\S]*booty: deactivated volume group bootyvg/);
  const root = assertLvmGrownOnHost(disk, image, assertPartitionGrown(disk, image));
  assert.equal(ext4FileAtOffset(disk, root.offset, root.bytes, '/etc/booty-e2e-note'), note);
  assert.equal(ext4FileAtOffset(disk, root.offset, root.bytes, '/etc/hostname').trim(), 'booty-nvme');
  const marker = await bootDeployed('nvme-lvm', disk, 'nvme', t);
  assertGrownMarker(marker, image, 'nvme0n1');
  assert.equal(marker.root, '/dev/mapper/bootyvg-root');
});

// (c) virtio disk, plain ext4 image (gzip): in firmware-netboot.test.ts (bios), the same deploy netbooted by SeaBIOS and iPXE

test('(d) virtio disk, plain image as a qcow2 with zstd-compressed clusters (qemu-img): deploy, grow, reboot; the disk then boots alone', { skip, timeout: deployMs + markerMs + 120_000 }, async (t) => {
  const { disk, out, image } = await deployAndGrow({ name: 'virtio-qcow2', kind: 'plain', form: 'qcow2', bus: 'virtio', prefix: '10.231.27', mac: '52:54:00:d0:00:27' }, t);
  assert.match(out, /deploy: format qcow2 \(v3\), 2\.15 GB disk, 64 KiB clusters/);
  const part = assertPartitionGrown(disk, image);
  assert.equal(ext4AtOffset(disk, part.start * 512, part.size * 512).state, 'clean');
  const marker = await bootDeployed('virtio-qcow2', disk, 'virtio', t);
  assertGrownMarker(marker, image, 'vda');
});

test('(e) virtio disk, LVM image pulled from a real OCI registry (oci+http://): deploy, grow, reboot; the disk then boots alone', { skip, timeout: deployMs + markerMs + 120_000 }, async (t) => {
  const { disk, out, image } = await deployAndGrow({ name: 'virtio-oci', kind: 'lvm', form: 'oci', bus: 'virtio', prefix: '10.231.28', mac: '52:54:00:d0:00:28' }, t);
  assert.match(out, /deploy: oci\+http:\/\/\S+ is http:\/\/\S+\/v2\/os\/debian\/blobs\/sha256:[0-9a-f]+ \(.*verified against its digest\)/);
  assertLvmGrownOnHost(disk, image, assertPartitionGrown(disk, image));
  const marker = await bootDeployed('virtio-oci', disk, 'virtio', t);
  assertGrownMarker(marker, image, 'vda');
  assert.equal(marker.root, '/dev/mapper/bootyvg-root');
});
