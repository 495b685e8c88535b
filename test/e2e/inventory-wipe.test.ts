// Disks and machines on real (emulated) hardware: our kernel and initramfs in QEMU with an NVMe
// disk, a SATA disk on AHCI, a virtio-scsi disk, two virtio-blk disks (one 4Kn), an e1000 NIC and
// SMBIOS strings, against a real `booty server` and real dnsmasq in a network namespace.
//   boot 1: the MAC is unknown to the server -> the server's default action `inspect`: the agent
//           sends its inventory (which must match exactly what QEMU was told), shows up in
//           `booty machines list` and waits; an operator then sets `wipe` method `secure` on the
//           NVMe disk (chosen by the transport hint) -> Format NVM, verification reads zeros, the
//           result says `secure (nvme format ...)`; reboot (-no-reboot ends QEMU)
//   boot 2: `wipe` method `zero` on the virtio disk chosen by its serial -> verified.
//   boot 3: `secure` on the SATA disk with `fallback: zero`: no secure erase there, zero runs and
//           the result names both.
//   boot 4: `discard` on the virtio-scsi disk: run, read, and reported as not verified (the device
//           promises no zeros).
// The disk files are checked from the host too: the wiped ones hold only zeros, the others are
// untouched. Sized for TCG on a shared 2-core machine: two boots of about a minute or two.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, startVm, TEST_DISK_CACHE } from '../helpers/qemu.ts';
import { QemuNetLab } from '../helpers/qemu-netns-lab.ts';
import { ensureInitramfs } from '../helpers/initramfs-build.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import type { MachineInventory } from '../../src/config/inventory.ts';

const isRoot = process.getuid?.() === 0;
const have = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const missing = ['qemu-system-x86_64', 'dnsmasq', 'curl', 'apt-get', 'dpkg-deb', 'depmod'].filter((c) => !have(c));
const skip = skipUnlessPresent(isRoot && missing.length === 0, !isRoot ? 'needs root (network namespaces, tap)' : `missing: ${missing.join(', ')}`);

const MiB = 2 ** 20;
const bootMs = 8 * 60_000; // a generous bound for TCG on a busy machine, not a timing assertion
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-inventory-e2e-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

let kernel = '';
let initrd = '';
before(async () => {
  if (skip !== false) return;
  ({ kernel, initrd } = await ensureInitramfs());
});

/** A disk image full of random bytes, so a wipe that skips anything shows. */
function randomDisk(name: string, bytes: number): { path: string; sha256: string } {
  const p = path.join(work, name);
  const fd = fs.openSync(p, 'w');
  const h = crypto.createHash('sha256');
  for (let off = 0; off < bytes; off += MiB) {
    const b = crypto.randomBytes(MiB);
    h.update(b);
    fs.writeSync(fd, b, 0, b.length, off);
  }
  fs.closeSync(fd);
  return { path: p, sha256: h.digest('hex') };
}

const sha256Of = (p: string) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
const allZero = (p: string) => fs.readFileSync(p).every((b) => b === 0);

test('unknown machine -> inspect: inventory exactly as QEMU was told, listed; secure wipe of NVMe (Format NVM) and zero wipe of virtio verified; secure on SATA falls back to zero; discard reported unverified', { skip, timeout: 4 * bootMs + 180_000 }, async (t) => {
  const lab = new QemuNetLab('10.231.41');
  t.after(() => lab.close());
  await lab.startDnsmasq();
  await lab.startServer();
  const mac = '52:54:00:e1:17:01';
  const uuid = 'c0ffee00-1717-4a4a-8b8b-000000000017';
  const nvme = randomDisk('nvme.img', 64 * MiB);
  const sata = randomDisk('sata.img', 48 * MiB);
  const scsi = randomDisk('scsi.img', 40 * MiB);
  const virt = randomDisk('virt.img', 32 * MiB);
  const virt4k = randomDisk('virt4k.img', 24 * MiB);
  const drive = (file: string, id: string, extra = '') => ['-drive', `file=${file},format=raw,if=none,id=${id},cache=${TEST_DISK_CACHE}${extra}`];
  const hardware = [
    '-smbios', `type=1,manufacturer=BootyLabs,product=Inventory Rig,serial=INV-SER-0042,uuid=${uuid}`,
    ...drive(nvme.path, 'd0'), '-device', 'nvme,drive=d0,serial=NVME-INV-1',
    '-device', 'ahci,id=ahci',
    ...drive(sata.path, 'd1'), '-device', 'ide-hd,drive=d1,bus=ahci.0,serial=SATA-INV-2,model=INV SATA DISK,wwn=0x5000c500a1b2c3d4,rotation_rate=7200',
    '-device', 'virtio-scsi-pci,id=scsi0',
    ...drive(scsi.path, 'd2', ',discard=unmap'), '-device', 'scsi-hd,drive=d2,bus=scsi0.0,serial=SCSI-INV-3,vendor=ACME,product=INV SCSI',
    ...drive(virt.path, 'd3'), '-device', 'virtio-blk-pci,drive=d3,serial=VIRT-INV-4',
    ...drive(virt4k.path, 'd4'), '-device', 'virtio-blk-pci,drive=d4,serial=VIRT-4KN-5,logical_block_size=4096,physical_block_size=4096',
  ];
  const boot = (name: string) => startVm({
    name, kernel, initrd, memMiB: 768,
    append: `console=ttyS0 quiet ${lab.agentArgs(mac)} booty.onerror=poweroff booty.countdown=0`,
    nic: { tap: lab.tap, netns: lab.ns, mac, model: 'e1000' }, extraArgs: hardware,
  }, t);

  // ---- boot 1: unknown -> inspect
  const t1 = performance.now();
  const vm = await boot('inventory-inspect');
  const waiting = await waitFor(() => {
    const m = lab.machine(mac);
    return m?.phase === 'inspecting' ? m : undefined;
  }, bootMs, () => vm.tail());
  const inspectSeconds = (performance.now() - t1) / 1000;
  assert.equal(waiting.next, 'inspect (report the hardware, wait for an operator)');
  assert.equal(waiting.actionSource, 'server');
  for (const mod of ['nvme', 'ahci', 'virtio_scsi', 'sd_mod', 'e1000', 'virtio_blk']) assert.match(vm.output, new RegExp(`loaded ${mod}\\b`), `module ${mod} found by modalias`);

  const { inventory: inv } = JSON.parse(lab.api('GET', `/api/machines/${mac}/inventory`)) as { inventory: MachineInventory };
  assert.deepEqual(
    { vendor: inv.system.vendor, product: inv.system.product, serial: inv.system.serial, uuid: inv.system.uuid },
    { vendor: 'BootyLabs', product: 'Inventory Rig', serial: 'INV-SER-0042', uuid },
  );
  assert.equal(inv.firmware.mode, 'bios');
  assert.equal(inv.cpu.threads, 1);
  assert.ok(inv.memory.totalBytes > 600 * MiB && inv.memory.totalBytes <= 768 * MiB, `MemTotal ${inv.memory.totalBytes}`);
  const bySerial = new Map(inv.disks.map((d) => [d.serial, d]));
  const expectDisk = (serial: string, want: Partial<MachineInventory['disks'][number]>) => {
    const d = bySerial.get(serial);
    assert.ok(d !== undefined, `disk ${serial} in the inventory: ${JSON.stringify(inv.disks)}`);
    const got = Object.fromEntries(Object.keys(want).map((k) => [k, (d as unknown as Record<string, unknown>)[k]]));
    assert.deepEqual(got, want, `disk ${serial}`);
  };
  expectDisk('NVME-INV-1', { transport: 'nvme', sizeBytes: 64 * MiB, logicalSectorSize: 512, physicalSectorSize: 512, rotational: false, model: 'QEMU NVMe Ctrl' });
  expectDisk('SATA-INV-2', { transport: 'sata', sizeBytes: 48 * MiB, logicalSectorSize: 512, physicalSectorSize: 512, rotational: true, model: 'INV SATA DISK', vendor: 'ATA', wwn: 'naa.5000c500a1b2c3d4' });
  expectDisk('SCSI-INV-3', { transport: 'scsi', sizeBytes: 40 * MiB, logicalSectorSize: 512, physicalSectorSize: 512, model: 'INV SCSI', vendor: 'ACME' });
  expectDisk('VIRT-INV-4', { transport: 'virtio', sizeBytes: 32 * MiB, logicalSectorSize: 512, physicalSectorSize: 512 });
  expectDisk('VIRT-4KN-5', { transport: 'virtio', sizeBytes: 24 * MiB, logicalSectorSize: 4096, physicalSectorSize: 4096 });
  assert.equal(inv.disks.length, 5, JSON.stringify(inv.disks.map((d) => d.name)));
  const nic = inv.nics.find((n) => n.mac === mac);
  assert.deepEqual(nic && { mac: nic.mac, driver: nic.driver, link: nic.link }, { mac, driver: 'e1000', link: true });
  assert.equal(nic?.speedMbps, 1000);

  // `booty machines list`, run where the server is (inside the namespace)
  const list = execFileSync('ip', ['netns', 'exec', lab.ns, path.join(repoRoot, 'bin', 'booty'), 'machines', 'list', '--server', lab.serverUrl, '--token', lab.operatorToken], { encoding: 'utf8' });
  const row = list.split('\n').find((l) => l.startsWith(mac.replaceAll(':', '-')));
  assert.ok(row !== undefined, list);
  assert.match(row, /inspecting/);
  assert.match(row, /BootyLabs Inventory Rig, serial INV-SER-0042, bios, 1 CPU, [\d.]+ GiB RAM, disks: .*nvme0n1 nvme 64 MiB/);
  assert.match(row, /vd[ab] virtio 24 MiB 4Kn/);

  // the operator's action: a secure wipe of the NVMe disk, found by the transport hint
  const t2 = performance.now();
  lab.setAction(mac, { action: 'wipe', diskHints: { transport: 'nvme' }, method: 'secure', after: 'reboot' });
  const exit1 = await vm.waitExit(bootMs);
  assert.equal(exit1.code, 0, vm.tail());
  const wipeSeconds = (performance.now() - t2) / 1000;
  assert.match(vm.output, /Format NVM with Secure Erase Settings 1/);
  assert.doesNotMatch(vm.output, /BOOTY FAILED|Kernel panic/);
  const m1 = await lab.waitForMachine(mac, (x) => (x.result as { action?: string } | undefined)?.action === 'wipe');
  const r1 = m1.result as Record<string, unknown>;
  assert.equal(r1.ok, true, JSON.stringify(r1));
  assert.match(String(r1.method), /^secure \(nvme format, user data erase\)$/);
  assert.equal(r1.verified, true);
  assert.match(String(r1.verification), /^head 1 MiB, tail 1 MiB, 64 random 4 KiB blocks read back as zeros \(O_DIRECT\)$/);
  // from the host: the NVMe disk holds zeros only; the others are as they were
  assert.ok(allZero(nvme.path), 'the NVMe disk file is all zeros after Format NVM');
  for (const d of [sata, scsi, virt, virt4k]) assert.equal(sha256Of(d.path), d.sha256, `${d.path} untouched`);

  // ---- boot 2: zero wipe of the virtio disk, chosen by its serial (a fact of the inventory)
  lab.setAction(mac, { action: 'wipe', diskHints: { serial: 'VIRT-INV-4' }, method: 'zero', after: 'reboot' });
  const t3 = performance.now();
  const vm2 = await boot('inventory-wipe-zero');
  const exit2 = await vm2.waitExit(bootMs);
  assert.equal(exit2.code, 0, vm2.tail());
  const zeroSeconds = (performance.now() - t3) / 1000;
  const m2 = await lab.waitForMachine(mac, (x) => String((x.result as { method?: string } | undefined)?.method ?? '').startsWith('zero'));
  const r2 = m2.result as Record<string, unknown>;
  assert.equal(r2.ok, true, JSON.stringify(r2));
  assert.match(String(r2.method), /^zero \(BLKZEROOUT\)$/);
  assert.equal(r2.verified, true);
  assert.match(String(r2.verification), /64 random 4 KiB blocks read back as zeros/);
  assert.ok(allZero(virt.path), 'the virtio disk file is all zeros');
  for (const d of [sata, scsi, virt4k]) assert.equal(sha256Of(d.path), d.sha256, `${d.path} untouched`);

  // ---- boot 3: secure on the SATA disk: no NVMe, so the action's fallback zero runs, and says so
  lab.setAction(mac, { action: 'wipe', diskHints: { transport: 'sata' }, method: 'secure', fallback: 'zero', after: 'reboot' });
  const vm3 = await boot('inventory-wipe-fallback');
  assert.equal((await vm3.waitExit(bootMs)).code, 0, vm3.tail());
  const m3 = await lab.waitForMachine(mac, (x) => String((x.result as { method?: string } | undefined)?.method ?? '').startsWith('secure not available'));
  const r3 = m3.result as Record<string, unknown>;
  assert.equal(r3.ok, true, JSON.stringify(r3));
  assert.match(String(r3.method), /^secure not available \(\/dev\/sda is not an NVMe namespace \(ATA Secure Erase and SCSI SANITIZE are not implemented by booty\)\); fallback: zero \(BLKZEROOUT\)$/);
  assert.equal(r3.verified, true);
  assert.ok(allZero(sata.path), 'the SATA disk file is all zeros');

  // ---- boot 4: discard on the virtio-scsi disk (QEMU passes UNMAP on as holes): the device
  // promises nothing about what discarded blocks read, so the reads are reported, not claimed
  lab.setAction(mac, { action: 'wipe', diskHints: { transport: 'scsi' }, method: 'discard', after: 'reboot' });
  const vm4 = await boot('inventory-wipe-discard');
  assert.equal((await vm4.waitExit(bootMs)).code, 0, vm4.tail());
  const m4 = await lab.waitForMachine(mac, (x) => String((x.result as { method?: string } | undefined)?.method ?? '').startsWith('discard'));
  const r4 = m4.result as Record<string, unknown>;
  assert.equal(r4.ok, true, JSON.stringify(r4));
  assert.equal(r4.method, 'discard (BLKDISCARD)');
  assert.equal(r4.verified, false);
  assert.match(String(r4.verification), /^the device does not promise that discarded blocks read as zeros \(queue\/discard_zeroes_data is not 1\): head 1 MiB, tail 1 MiB, 64 random 4 KiB blocks read/);
  assert.equal(sha256Of(virt4k.path), virt4k.sha256, 'the 4Kn disk was never touched');
  t.diagnostic(`TCG: power-on to inspecting ${inspectSeconds.toFixed(0)} s; action set to QEMU exit (secure wipe) ${wipeSeconds.toFixed(0)} s; boot 2 (zero wipe) ${zeroSeconds.toFixed(0)} s`);
});

async function waitFor<T>(probe: () => T | undefined, ms: number, context: () => string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out; console:\n${context()}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
