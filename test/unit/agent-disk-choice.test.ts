import { test } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { chooseDisk, compareDiskNames, describeSnapshot, type BlockEntry } from '../../src/agent/disk-choice.ts';
import { isBootyError } from '../../src/util/errors.ts';

const disk = (name: string, extra: Partial<BlockEntry> = {}): BlockEntry => ({ name, partition: false, removable: false, readOnly: false, sizeSectors: 8388608, ...extra });
const part = (name: string, parent: string): BlockEntry => ({ ...disk(name), partition: true, parent });

test('natural order of disk names', () => {
  const names = ['sdaa', 'sdb', 'nvme10n1', 'sda', 'nvme2n1', 'vda', 'nvme0n1'];
  assert.deepEqual(names.sort(compareDiskNames), ['sda', 'sdb', 'sdaa', 'vda', 'nvme0n1', 'nvme2n1', 'nvme10n1'].sort(compareDiskNames));
  assert.ok(compareDiskNames('sdb', 'sdaa') < 0);
  assert.ok(compareDiskNames('nvme2n1', 'nvme10n1') < 0);
});

test('picks the first real, writable, fixed disk', () => {
  const snap = [disk('loop0'), disk('ram0'), disk('sr0'), disk('sdb'), disk('sda', { removable: true }), part('sdb1', 'sdb'), disk('zram0'), disk('dm-0')];
  const c = chooseDisk(snap);
  assert.equal(c.disk, '/dev/sdb');
  assert.match(c.reason, /first eligible disk \(4\.0 GiB\) of 1/);
});

test('skips read-only, empty, eMMC boot areas', () => {
  const snap = [disk('mmcblk0boot0'), disk('mmcblk0rpmb'), disk('nvme0n1', { readOnly: true }), disk('sda', { sizeSectors: 0 }), disk('mmcblk0')];
  assert.equal(chooseDisk(snap).disk, '/dev/mmcblk0');
});

test('nvme before later names only by natural order: vda and nvme0n1', () => {
  assert.equal(chooseDisk([disk('vda'), disk('nvme0n1')]).disk, '/dev/nvme0n1');
  assert.equal(chooseDisk([disk('vdb'), disk('vda')]).disk, '/dev/vda');
});

test('the action wins over booty.disk, which wins over the automatic choice', () => {
  const snap = [disk('sda'), disk('sdb'), disk('sdc')];
  assert.deepEqual(chooseDisk(snap, '/dev/sdc', 'sdb'), { disk: '/dev/sdc', reason: 'named by the action' });
  assert.deepEqual(chooseDisk(snap, undefined, 'sdb'), { disk: '/dev/sdb', reason: 'named by booty.disk' });
  assert.deepEqual(chooseDisk(snap, undefined, '/dev/sdb'), { disk: '/dev/sdb', reason: 'named by booty.disk' });
  // a named removable disk is allowed: the operator asked for it
  assert.equal(chooseDisk([disk('sda', { removable: true })], '/dev/sda').disk, '/dev/sda');
});

test('a named partition or unknown disk is refused before anything is written', () => {
  const snap = [disk('sda'), part('sda1', 'sda')];
  assert.throws(() => chooseDisk(snap, '/dev/sda1'), (e: unknown) => isBootyError(e) && e.code === 'disk-is-partition' && /partition of \/dev\/sda/.test(e.message) && e.diskState === 'untouched');
  assert.throws(() => chooseDisk(snap, undefined, 'sdz'), (e: unknown) => isBootyError(e) && e.code === 'disk-not-found' && /sda \(4\.0 GiB\)/.test(e.message));
  // paths below /dev that are not kernel names are passed to the writer, which checks them
  assert.equal(chooseDisk(snap, '/dev/disk/by-id/wwn-0x5000').disk, '/dev/disk/by-id/wwn-0x5000');
});

test('no eligible disk: the error lists what the kernel sees and why each was refused', () => {
  assert.throws(() => chooseDisk([disk('loop0'), disk('sda', { removable: true })]), (e: unknown) =>
    isBootyError(e) && e.code === 'no-disk' && e.stage === 'preflight' && /loop0 \(4\.0 GiB, a virtual or non-disk device\), sda \(4\.0 GiB, removable\)/.test(e.message));
  assert.match(describeSnapshot([]), /no block devices at all/);
});

// ---------------------------------------------------------------------------------------------
// Disk hints, on sysfs trees shaped like the kernel's (test/helpers/fake-sysfs-tree.ts)

import { after, describe } from 'node:test';
import { byPathNames, readBlockSnapshot, serialFromVpd80 } from '../../src/agent/block-snapshot.ts';
import { normalizeWwn } from '../../src/agent/disk-hints.ts';
import type { DiskHints } from '../../src/config/action.ts';
import { parseAction } from '../../src/config/parse.ts';
import { FakeSysfs, GiB, vpd80 } from '../helpers/fake-sysfs-tree.ts';

const trees: FakeSysfs[] = [];
after(() => { for (const t of trees) t.remove(); });
function tree(): FakeSysfs { const t = new FakeSysfs(); trees.push(t); return t; }

const pci = 'pci0000:00';

/** A QEMU q35-like machine: two virtio-blk disks, SATA disk + CD, virtio-scsi disk, NVMe, loop, ram, USB stick. */
function rack(): FakeSysfs {
  return tree()
    .addDisk({ name: 'vda', devPath: `${pci}/0000:00:05.0/virtio2/block/vda`, bytes: 8 * GiB, partitions: ['vda1', 'vda2'],
      files: { serial: 'boot-disk-a', 'queue/rotational': '1\n', 'device/vendor': '0x1af4\n' } })
    .addDisk({ name: 'vdb', devPath: `${pci}/0000:00:06.0/virtio3/block/vdb`, bytes: 20 * GiB,
      files: { serial: 'data-disk-b', 'queue/rotational': '1\n', 'device/vendor': '0x1af4\n' } })
    .addDisk({ name: 'sda', devPath: `${pci}/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda`, bytes: 64 * GiB,
      files: { 'queue/rotational': '1\n', 'device/model': 'QEMU HARDDISK   \n', 'device/vendor': 'ATA     \n', 'device/vpd_pg80': vpd80('QM00001\0\0'), 'device/wwid': 'naa.5000c500a1b2c3d4\n' } })
    .addClassDevice('ata_port', 'ata1', `${pci}/0000:00:1f.2/ata1/ata_port/ata1`, { port_no: '1\n' })
    .addDisk({ name: 'sr0', devPath: `${pci}/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0/block/sr0`, bytes: 1 * GiB,
      files: { removable: '1\n', 'device/model': 'QEMU DVD-ROM\n', 'device/vendor': 'QEMU\n' } })
    .addClassDevice('ata_port', 'ata2', `${pci}/0000:00:1f.2/ata2/ata_port/ata2`, { port_no: '2\n' })
    .addDisk({ name: 'sdb', devPath: `${pci}/0000:00:07.0/virtio4/host3/target3:0:1:2/3:0:1:2/block/sdb`, bytes: 32 * GiB,
      files: { 'queue/rotational': '1\n', 'device/model': 'QEMU HARDDISK\n', 'device/vendor': 'QEMU\n', 'device/vpd_pg80': vpd80('scsi-serial-7') } })
    .addDir(`${pci}/0000:00:07.0/virtio4/host2`) // a host with a lower number on the same controller
    .addDisk({ name: 'nvme0n1', devPath: `${pci}/0000:00:04.0/nvme/nvme0/nvme0n1`, bytes: 16 * GiB,
      files: { 'queue/rotational': '0\n', wwid: 'eui.0025388b71b1b3c2\n', nsid: '1\n', 'device/model': 'Samsung SSD 980 PRO 1TB\n', 'device/serial': 'S64DNF0R123456  \n' } })
    .addDisk({ name: 'sdc', devPath: `${pci}/0000:00:14.0/usb1/1-1/1-1:1.0/host4/target4:0:0/4:0:0:0/block/sdc`, bytes: 16 * GiB,
      files: { removable: '1\n', 'queue/rotational': '1\n', 'device/model': 'Cruzer Blade\n', 'device/vendor': 'SanDisk\n', 'device/vpd_pg80': vpd80('4C530001') } })
    .addDisk({ name: 'loop0', devPath: 'virtual/block/loop0', bytes: 100 * GiB, files: { 'queue/rotational': '1\n' } })
    .addDisk({ name: 'ram0', devPath: 'virtual/block/ram0', bytes: 64 * 2 ** 20 });
}

const choose = (t: FakeSysfs, hints: DiskHints) => chooseDisk(readBlockSnapshot(t.classBlock), undefined, undefined, hints);
const noMatch = (t: FakeSysfs, hints: DiskHints) => {
  try { choose(t, hints); } catch (e) {
    assert.ok(isBootyError(e), String(e));
    assert.equal(e.code, 'disk-hints-no-match');
    assert.equal(e.stage, 'preflight');
    assert.equal(e.diskState, 'untouched');
    return e.message;
  }
  assert.fail(`hints ${JSON.stringify(hints)} matched a disk`);
};

describe('reading sysfs', () => {
  test('every transport: serial, model, vendor, WWN, rotational, hctl and by-path as udev names them', () => {
    const snap = new Map(readBlockSnapshot(rack().classBlock).map((e) => [e.name, e]));
    assert.deepEqual(snap.get('vda'), { name: 'vda', partition: false, parent: undefined, removable: false, readOnly: false, sizeSectors: 8 * GiB / 512,
      serial: 'boot-disk-a', vendor: '0x1af4', rotational: true, byPath: ['pci-0000:00:05.0', 'virtio-pci-0000:00:05.0'], transport: 'virtio' });
    assert.deepEqual(snap.get('sda'), { name: 'sda', partition: false, parent: undefined, removable: false, readOnly: false, sizeSectors: 64 * GiB / 512,
      serial: 'QM00001', model: 'QEMU HARDDISK', vendor: 'ATA', wwn: 'naa.5000c500a1b2c3d4', rotational: true, hctl: '0:0:0:0',
      byPath: ['pci-0000:00:1f.2-ata-1.0', 'pci-0000:00:1f.2-ata-1'], transport: 'sata' });
    assert.deepEqual(snap.get('nvme0n1'), { name: 'nvme0n1', partition: false, parent: undefined, removable: false, readOnly: false, sizeSectors: 16 * GiB / 512,
      serial: 'S64DNF0R123456', model: 'Samsung SSD 980 PRO 1TB', wwn: 'eui.0025388b71b1b3c2', rotational: false, byPath: ['pci-0000:00:04.0-nvme-1'], transport: 'nvme' });
    // virtio-scsi: the host number is relative to the controller's lowest (host2 -> 0... host3 -> 1)
    assert.deepEqual(snap.get('sdb')?.byPath, ['pci-0000:00:07.0-scsi-1:0:1:2']);
    assert.equal(snap.get('sdb')?.hctl, '3:0:1:2');
    assert.equal(snap.get('sdb')?.serial, 'scsi-serial-7');
    // USB: udev names it differently; booty does not guess
    assert.equal(snap.get('sdc')?.byPath, undefined);
    assert.equal(snap.get('sdc')?.removable, true);
    assert.deepEqual(snap.get('vda1'), { name: 'vda1', partition: true, parent: 'vda', removable: false, readOnly: false, sizeSectors: 2048 });
    assert.equal(snap.get('loop0')?.byPath, undefined);
  });

  test('missing and odd files leave properties unknown instead of failing', () => {
    const t = tree()
      .addDisk({ name: 'sda', devPath: `${pci}/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda`, bytes: GiB }) // no ata_port, no files
      .addDisk({ name: 'vdz', devPath: `${pci}/0000:00:09.0/virtio9/block/vdz`, bytes: GiB,
        files: { serial: '\0\0\0', 'queue/rotational': 'maybe\n', 'device/vpd_pg80': Buffer.from([0, 0x83, 0, 2, 65, 66]) } });
    fs.writeFileSync(path.join(t.classBlock, 'vdz', 'size'), 'garbage\n');
    const snap = readBlockSnapshot(t.classBlock);
    const sda = snap.find((e) => e.name === 'sda')!;
    assert.deepEqual(sda, { name: 'sda', partition: false, parent: undefined, removable: false, readOnly: false, sizeSectors: 2 * 2 ** 20, hctl: '0:0:0:0', transport: 'sata' });
    const vdz = snap.find((e) => e.name === 'vdz')!;
    assert.equal(vdz.serial, undefined); // NULs only; a VPD page that is not 0x80 is ignored
    assert.equal(vdz.rotational, undefined);
    assert.equal(vdz.sizeSectors, 0);
    assert.deepEqual(readBlockSnapshot(path.join(t.root, 'nowhere')), []);
    // and hints on what is unknown say so
    const msg = noMatch(t, { serial: 'X', rotational: false, byPath: 'pci-0000:00:1f.2-ata-1.0' });
    assert.match(msg, /\/dev\/sda: 1\.0 GiB \(1073741824 bytes\), no serial, sata, hctl 0:0:0:0\n  not used: no serial number readable \(wanted "X"\); the kernel does not say whether it is rotational; by-path name unknown/);
    assert.match(msg, /\/dev\/vdz: 0 bytes, no serial, virtio, by-path pci-0000:00:09\.0\n  not used: empty \(size 0\)/);
  });

  test('NVMe multipath: hidden path nodes are never targets; the head node finds its PCI function through the controller', () => {
    const t = tree()
      .addDisk({ name: 'nvme0n1', devPath: 'virtual/nvme-subsystem/nvme-subsys0/nvme0n1', bytes: 4 * GiB, files: { nsid: '1\n', 'queue/rotational': '0\n' } })
      .addDisk({ name: 'nvme0c0n1', devPath: `${pci}/0000:00:04.0/nvme/nvme0/nvme0c0n1`, bytes: 4 * GiB, files: { hidden: '1\n' } })
      .addClassDevice('nvme', 'nvme0', `${pci}/0000:00:04.0/nvme/nvme0`);
    const snap = readBlockSnapshot(t.classBlock);
    assert.deepEqual(snap.find((e) => e.name === 'nvme0n1')?.byPath, ['pci-0000:00:04.0-nvme-1']);
    assert.equal(chooseDisk(snap).disk, '/dev/nvme0n1');
    assert.equal(choose(t, { byPath: '/dev/disk/by-path/pci-0000:00:04.0-nvme-1' }).disk, '/dev/nvme0n1');
  });

  test('by-path: SATA behind a port multiplier, master/slave, and transports udev names otherwise', () => {
    const t = tree().addClassDevice('ata_port', 'ata3', `${pci}/0000:00:1f.2/ata3/ata_port/ata3`, { port_no: '3\n' });
    const base = `${t.root}/devices/${pci}/0000:00:1f.2/ata3/host2`;
    assert.deepEqual(byPathNames(`${base}/target2:2:0/2:2:0:0/block/sdd`, 'sdd', path.join(t.root, 'class'), undefined), ['pci-0000:00:1f.2-ata-3.2.0', 'pci-0000:00:1f.2-ata-3']);
    assert.deepEqual(byPathNames(`${base}/target2:0:1/2:0:1:0/block/sde`, 'sde', path.join(t.root, 'class'), undefined), ['pci-0000:00:1f.2-ata-3.1', 'pci-0000:00:1f.2-ata-3']);
    assert.deepEqual(byPathNames('/sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0/host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/block/sda', 'sda', '/nonexistent', undefined), []);
    assert.deepEqual(byPathNames('/sys/devices/platform/soc/mmc0/mmc_host/mmc0/mmc0:0001/block/mmcblk0', 'mmcblk0', '/nonexistent', undefined), []);
    // a PCI bridge: the function nearest the disk counts
    assert.deepEqual(byPathNames('/sys/devices/pci0000:00/0000:00:1c.4/0000:3c:00.0/nvme/nvme1/nvme1n2', 'nvme1n2', '/nonexistent', undefined), ['pci-0000:3c:00.0-nvme-2']);
  });

  test('VPD page 0x80 and WWN notation', () => {
    assert.equal(serialFromVpd80(vpd80('  WD-WCC4N1234567  ')), 'WD-WCC4N1234567');
    assert.equal(serialFromVpd80(Buffer.from([0, 0x80, 0])), undefined);
    assert.equal(normalizeWwn('0x5000C500A1B2C3D4'), normalizeWwn('naa.5000c500a1b2c3d4'));
    assert.equal(normalizeWwn('wwn-0x5000c500a1b2c3d4'), '5000c500a1b2c3d4');
    assert.equal(normalizeWwn('eui.0025388B71B1B3C2'), '0025388b71b1b3c2');
  });
});

describe('choosing by hints', () => {
  test('virtio: serial (any case) and by-path pick the named disk, not the first one', () => {
    const t = rack();
    assert.deepEqual(choose(t, { serial: 'DATA-DISK-B' }), { disk: '/dev/vdb', reason: 'the only disk matching the disk hints (serial="DATA-DISK-B")' });
    assert.equal(choose(t, { byPath: 'virtio-pci-0000:00:06.0' }).disk, '/dev/vdb');
    assert.equal(choose(t, { name: '/dev/vdb' }).disk, '/dev/vdb');
  });

  test('SATA: WWN in any notation, model part, vendor, hctl, by-path (current and compat names)', () => {
    const t = rack();
    for (const h of [{ wwn: '0x5000C500A1B2C3D4' }, { wwn: 'wwn-0x5000c500a1b2c3d4' }, { model: 'harddisk', vendor: 'ata' }, { hctl: '0:0:0:0' },
      { byPath: 'pci-0000:00:1f.2-ata-1.0' }, { byPath: '/dev/disk/by-path/pci-0000:00:1f.2-ata-1' }, { serial: 'qm00001', minSize: 60 * GiB }] as DiskHints[]) {
      assert.equal(choose(t, h).disk, '/dev/sda', JSON.stringify(h));
    }
  });

  test('NVMe: non-rotational + model; WWN from the namespace', () => {
    const t = rack();
    assert.equal(choose(t, { rotational: false, model: 'samsung ssd 980' }).disk, '/dev/nvme0n1');
    assert.equal(choose(t, { wwn: 'eui.0025388b71b1b3c2', serial: 's64dnf0r123456' }).disk, '/dev/nvme0n1');
    assert.equal(choose(t, { rotational: false }).disk, '/dev/nvme0n1');
  });

  test('several match: the smallest is used and the others are named (Ironic rule); ties by name', () => {
    const t = rack();
    const c = choose(t, { rotational: true, minSize: 10 * GiB });
    // vdb 20 GiB < sdb 32 GiB < sda 64 GiB; loop0 (100 GiB, rotational) and sdc (USB) never count
    assert.equal(c.disk, '/dev/vdb');
    assert.deepEqual(c.alsoMatched, ['/dev/sdb (32.0 GiB)', '/dev/sda (64.0 GiB)']);
    assert.match(c.reason, /^the smallest of 3 disks matching the disk hints \(minSize=10\.0 GiB \(10737418240 bytes\), rotational=true\); also matched: \/dev\/sdb \(32\.0 GiB\), \/dev\/sda \(64\.0 GiB\)$/);
    const tie = [disk('sdb', { serial: 'x' }), disk('sda', { serial: 'X' }), disk('sdc', { serial: 'x', sizeSectors: 10 })];
    assert.equal(chooseDisk(tie, undefined, undefined, { serial: 'x' }).disk, '/dev/sdc');
    assert.equal(chooseDisk(tie, undefined, undefined, { serial: 'x', minSize: 512 * 11 }).disk, '/dev/sda');
  });

  test('removable, loop, ram, optical and partitions are excluded even when their properties match', () => {
    const t = rack();
    // only the USB stick has this serial; only loop0 is 100 GiB; sr0 is the only "QEMU DVD"
    const usb = noMatch(t, { serial: '4C530001' });
    assert.match(usb, /- \/dev\/sdc: 16\.0 GiB \(17179869184 bytes\), model "Cruzer Blade", vendor "SanDisk", serial "4C530001", rotational, usb, hctl 4:0:0:0\n  not used: removable/);
    assert.match(noMatch(t, { minSize: 90 * GiB }), /never a target \(virtual or optical\): loop0, ram0, sr0$/);
    assert.match(noMatch(t, { model: 'DVD' }), /never a target \(virtual or optical\): loop0, ram0, sr0$/);
    assert.match(noMatch(t, { name: 'vda1' }), /not used: name is vda, not vda1/);
    assert.doesNotMatch(noMatch(t, { name: 'vda1' }), /\/dev\/vda1/);
  });

  test('no match: every disk is listed with its properties and every failing hint', () => {
    const msg = noMatch(rack(), { serial: 'S4EVNF0M', minSize: 100 * GiB, rotational: false });
    assert.match(msg, /^no disk matches the disk hints \(minSize=100\.0 GiB \(107374182400 bytes\), serial="S4EVNF0M", rotational=false\); disks seen:\n/);
    for (const name of ['vda', 'vdb', 'sda', 'sdb', 'sdc', 'nvme0n1']) assert.match(msg, new RegExp(`^- /dev/${name}: `, 'm'), name);
    assert.match(msg, /- \/dev\/sda: 64\.0 GiB \(68719476736 bytes\), model "QEMU HARDDISK", vendor "ATA", serial "QM00001", wwn "naa\.5000c500a1b2c3d4", rotational, sata, hctl 0:0:0:0, by-path pci-0000:00:1f\.2-ata-1\.0\n  not used: size 64\.0 GiB \(68719476736 bytes\) is below minSize 100\.0 GiB \(107374182400 bytes\); serial is "QM00001", not "S4EVNF0M"; rotational \(a spinning disk\), wanted an SSD/);
    assert.match(msg, /- \/dev\/nvme0n1: .*\n  not used: size 16\.0 GiB \(17179869184 bytes\) is below minSize .*; serial is "S64DNF0R123456", not "S4EVNF0M"$/m);
    assert.match(msg, /- \/dev\/vda: 8\.0 GiB .*, vendor "0x1af4", serial "boot-disk-a", rotational, virtio, by-path pci-0000:00:05\.0\n/);
    assert.match(noMatch(rack(), { maxSize: 4 * GiB }), /size 8\.0 GiB \(8589934592 bytes\) is above maxSize 4\.0 GiB/);
    assert.match(noMatch(tree(), { serial: 'x' }), /no block devices at all/);
  });

  test('precedence: the action\'s disk, then its hints, then booty.disk, then the first disk', () => {
    const snap = readBlockSnapshot(rack().classBlock);
    assert.equal(chooseDisk(snap, '/dev/sda', 'vda', { serial: 'data-disk-b' }).disk, '/dev/sda');
    assert.equal(chooseDisk(snap, undefined, 'vda', { serial: 'data-disk-b' }).disk, '/dev/vdb');
    assert.equal(chooseDisk(snap, undefined, 'sda').disk, '/dev/sda');
    assert.equal(chooseDisk(snap).disk, '/dev/nvme0n1');
  });

  test('hints as an operator writes them, through parseAction, choose on a tree', () => {
    const a = parseAction({ action: 'wipe', diskHints: { minSize: '30G', maxSize: '40GiB', vendor: 'qemu' } });
    assert.equal(a.action, 'wipe');
    assert.equal(choose(rack(), (a as { diskHints: DiskHints }).diskHints).disk, '/dev/sdb');
    // "64GB" is decimal: 64e9 bytes < 64 GiB, so sda (64 GiB) fits below "70GB" but not below "64GB"
    const dec = parseAction({ action: 'wipe', diskHints: { minSize: '40G', maxSize: '64GB' } }) as { diskHints: DiskHints };
    assert.match(noMatch(rack(), dec.diskHints), /\/dev\/sda: .*\n  not used: size 64\.0 GiB \(68719476736 bytes\) is above maxSize 59\.6 GiB \(64000000000 bytes\)/);
  });
});
