// The inventory's sysfs/procfs readers on trees shaped like the kernel's (fake-sysfs-tree.ts):
// DMI strings (placeholders dropped), BIOS/UEFI and the SecureBoot variable, /proc/cpuinfo and
// meminfo, disks with transport and sector sizes (4Kn), NICs with driver, speed and carrier; the
// transport disk hint; the server's schema accepting what the readers produce and refusing junk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FakeSysfs, GiB, vpd80 } from '../helpers/fake-sysfs-tree.ts';
import { collectInventory, summarizeInventory } from '../../src/inventory/collect.ts';
import { parseCpuinfo, parseMeminfo } from '../../src/inventory/cpu-memory.ts';
import { readDmi } from '../../src/inventory/dmi.ts';
import { EFI_GLOBAL_GUID, readFirmware } from '../../src/inventory/firmware.ts';
import { readNics } from '../../src/inventory/nics.ts';
import { readDisks } from '../../src/inventory/disks.ts';
import { transportOf, readBlockSnapshot } from '../../src/agent/block-snapshot.ts';
import { chooseDisk } from '../../src/agent/disk-choice.ts';
import { validators } from '../../src/config/schema.ts';
import { isBootyError } from '../../src/util/errors.ts';

const pci = 'pci0000:00';

/** A machine: NVMe, AHCI SATA, virtio-scsi, virtio-blk (4Kn), loop and a CD; e1000 + a bridge. */
function machine(): FakeSysfs {
  const fs_ = new FakeSysfs()
    .addDisk({ name: 'nvme0n1', devPath: `${pci}/0000:00:04.0/nvme/nvme0/nvme0n1`, bytes: 64 * GiB,
      files: { 'device/serial': 'NVME-SER-1          \n', 'device/model': 'QEMU NVMe Ctrl                          \n', wwid: 'nvme.1b36-4e564d45\n', 'queue/rotational': '0\n', 'queue/logical_block_size': '512\n', 'queue/physical_block_size': '512\n', nsid: '1\n' } })
    .addDisk({ name: 'sda', devPath: `${pci}/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda`, bytes: 48 * GiB,
      files: { 'device/vpd_pg80': vpd80('SATA-SER-2'), 'device/model': 'INV SATA DISK   \n', 'device/vendor': 'ATA     \n', 'device/wwid': 'naa.5000c500a1b2c3d4\n', 'queue/rotational': '1\n', 'queue/logical_block_size': '512\n', 'queue/physical_block_size': '4096\n' } })
    .addDisk({ name: 'sdb', devPath: `${pci}/0000:00:05.0/virtio2/host1/target1:0:0/1:0:0:0/block/sdb`, bytes: 40 * GiB,
      files: { 'device/vpd_pg80': vpd80('SCSI-SER-3'), 'device/model': 'INV SCSI\n', 'device/vendor': 'ACME\n', 'queue/rotational': '1\n', 'queue/logical_block_size': '512\n', 'queue/physical_block_size': '512\n' } })
    .addDisk({ name: 'vda', devPath: `${pci}/0000:00:06.0/virtio3/block/vda`, bytes: 24 * GiB,
      files: { serial: 'VIRT-4KN\n', 'queue/rotational': '0\n', 'queue/logical_block_size': '4096\n', 'queue/physical_block_size': '4096\n' }, partitions: ['vda1'] })
    .addDisk({ name: 'sr0', devPath: `${pci}/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0/block/sr0`, bytes: 1 * GiB, files: { removable: '1\n' } })
    .addDisk({ name: 'loop0', devPath: 'virtual/block/loop0', bytes: 1 * GiB })
    .addNic('eth0', { pciPath: `${pci}/0000:00:03.0`, mac: '52:54:00:E1:17:01', driver: 'e1000', carrier: '1', speed: '1000' })
    .addNic('eth1', { pciPath: `${pci}/0000:00:07.0`, mac: '52:54:00:e1:17:02', driver: 'virtio_net', carrier: '0', speed: '-1' })
    .addNic('br0', { mac: '52:54:00:99:99:99', carrier: '1' });
  for (const [f, v] of Object.entries({
    sys_vendor: 'BootyLabs', product_name: 'Inventory Rig', product_version: 'To be filled by O.E.M.', product_serial: 'INV-SER-0042   ',
    product_uuid: 'C0FFEE00-1717-4A4A-8B8B-000000000017', board_vendor: 'Default string', bios_vendor: 'SeaBIOS', bios_version: '1.16.2-debian-1.16.2-1',
  })) fs_.addFile(`class/dmi/id/${f}`, `${v}\n`);
  return fs_;
}

function procfs(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-procfs-'));
  const cpu = (n: number, socket: number) => `processor\t: ${n}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nphysical id\t: ${socket}\ncpu cores\t: 2\n\n`;
  fs.writeFileSync(path.join(dir, 'cpuinfo'), cpu(0, 0) + cpu(1, 0) + cpu(2, 1) + cpu(3, 1));
  fs.writeFileSync(path.join(dir, 'meminfo'), 'MemTotal:         757288 kB\nMemFree:          600000 kB\n');
  return dir;
}

test('DMI: strings trimmed, placeholders left out, the UUID in lower case', (t) => {
  const s = machine();
  t.after(() => s.remove());
  assert.deepEqual(readDmi(s.root), {
    vendor: 'BootyLabs', product: 'Inventory Rig', serial: 'INV-SER-0042', uuid: 'c0ffee00-1717-4a4a-8b8b-000000000017',
    biosVendor: 'SeaBIOS', biosVersion: '1.16.2-debian-1.16.2-1',
  });
  assert.deepEqual(readDmi('/nonexistent'), {});
});

test('firmware: BIOS without /sys/firmware/efi; UEFI with Secure Boot on, off, or unknown without efivarfs', (t) => {
  const s = machine();
  t.after(() => s.remove());
  assert.deepEqual(readFirmware(s.root), { mode: 'bios' });
  fs.mkdirSync(path.join(s.root, 'firmware', 'efi', 'efivars'), { recursive: true });
  assert.deepEqual(readFirmware(s.root), { mode: 'uefi' });
  const v = path.join('firmware', 'efi', 'efivars', `SecureBoot-${EFI_GLOBAL_GUID}`);
  s.addFile(v, Buffer.from([0x06, 0, 0, 0, 1]));
  assert.deepEqual(readFirmware(s.root), { mode: 'uefi', secureBoot: true });
  s.addFile(v, Buffer.from([0x06, 0, 0, 0, 0]));
  assert.deepEqual(readFirmware(s.root), { mode: 'uefi', secureBoot: false });
});

test('cpuinfo and meminfo', (t) => {
  const proc = procfs();
  t.after(() => fs.rmSync(proc, { recursive: true, force: true }));
  assert.deepEqual(parseCpuinfo(fs.readFileSync(path.join(proc, 'cpuinfo'), 'utf8')), { model: 'Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz', threads: 4, sockets: 2, cores: 4 });
  // arm64 spelling, no sockets or cores
  assert.deepEqual(parseCpuinfo('processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n'), { threads: 2 });
  assert.equal(parseMeminfo('MemTotal:        1024 kB\n'), 1024 * 1024);
  assert.equal(parseMeminfo('nothing'), 0);
});

test('disks: whole disks with a device only, transport, sizes, sector sizes (4Kn), identity', (t) => {
  const s = machine();
  t.after(() => s.remove());
  assert.deepEqual(readDisks(s.root), [
    { name: 'nvme0n1', sizeBytes: 64 * GiB, logicalSectorSize: 512, physicalSectorSize: 512, transport: 'nvme', rotational: false, removable: false, readOnly: false, model: 'QEMU NVMe Ctrl', serial: 'NVME-SER-1', wwn: 'nvme.1b36-4e564d45' },
    { name: 'sda', sizeBytes: 48 * GiB, logicalSectorSize: 512, physicalSectorSize: 4096, transport: 'sata', rotational: true, removable: false, readOnly: false, model: 'INV SATA DISK', vendor: 'ATA', serial: 'SATA-SER-2', wwn: 'naa.5000c500a1b2c3d4' },
    { name: 'sdb', sizeBytes: 40 * GiB, logicalSectorSize: 512, physicalSectorSize: 512, transport: 'scsi', rotational: true, removable: false, readOnly: false, model: 'INV SCSI', vendor: 'ACME', serial: 'SCSI-SER-3' },
    { name: 'vda', sizeBytes: 24 * GiB, logicalSectorSize: 4096, physicalSectorSize: 4096, transport: 'virtio', rotational: false, removable: false, readOnly: false, serial: 'VIRT-4KN' },
  ]);
});

test('transport from the sysfs path', () => {
  assert.equal(transportOf('/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdc', 'sdc'), 'usb');
  assert.equal(transportOf('/sys/devices/pci0000:00/0000:00:1c.0/mmc_host/mmc0/mmc0:0001/block/mmcblk0', 'mmcblk0'), 'mmc');
  assert.equal(transportOf('/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/block/sda', 'sda'), 'scsi');
  assert.equal(transportOf('/sys/devices/virtual/block/loop0', 'loop0'), undefined);
});

test('NICs: physical only, MAC in lower case, driver, speed only with a link', (t) => {
  const s = machine();
  t.after(() => s.remove());
  assert.deepEqual(readNics(s.root), [
    { name: 'eth0', mac: '52:54:00:e1:17:01', driver: 'e1000', speedMbps: 1000, link: true },
    { name: 'eth1', mac: '52:54:00:e1:17:02', driver: 'virtio_net', link: false },
  ]);
});

test('the whole inventory validates against the server schema; its summary line', (t) => {
  const s = machine();
  const proc = procfs();
  t.after(() => { s.remove(); fs.rmSync(proc, { recursive: true, force: true }); });
  const inv = collectInventory({ sys: s.root, proc, now: () => new Date('2026-12-06T10:00:00Z') });
  assert.equal(validators.inventory(inv), true, JSON.stringify(validators.inventory.errors));
  assert.equal(inv.collected, '2026-12-06T10:00:00.000Z');
  assert.deepEqual(inv.memory, { totalBytes: 757288 * 1024 });
  assert.equal(summarizeInventory(inv), 'BootyLabs Inventory Rig, serial INV-SER-0042, bios, 4 CPUs, 740 MiB RAM, 4 disks (nvme0n1 nvme 64.0 GiB, sda sata 48.0 GiB, sdb scsi 40.0 GiB, vda virtio 24.0 GiB 4Kn)');
  // junk is refused by name
  assert.equal(validators.inventory({ ...inv, disks: [{ ...inv.disks[0], transport: 'floppy' }] }), false);
  assert.equal(validators.inventory({ ...inv, extra: 1 }), false);
  assert.equal(validators.inventory({ ...inv, nics: [{ name: 'eth0', mac: 'not-a-mac', link: true }] }), false);
});

test('disk hints match the inventory facts: transport', (t) => {
  const s = machine();
  t.after(() => s.remove());
  const snap = readBlockSnapshot(s.classBlock);
  assert.equal(chooseDisk(snap, undefined, undefined, { transport: 'nvme' }).disk, '/dev/nvme0n1');
  assert.equal(chooseDisk(snap, undefined, undefined, { transport: 'scsi' }).disk, '/dev/sdb');
  assert.equal(chooseDisk(snap, undefined, undefined, { transport: 'virtio', serial: 'virt-4kn' }).disk, '/dev/vda');
  assert.throws(() => chooseDisk(snap, undefined, undefined, { transport: 'usb' }), (e: unknown) =>
    isBootyError(e) && /transport is sata, not usb/.test(e.message) && /\/dev\/sda: 48\.0 GiB .*, sata, hctl/.test(e.message));
});
