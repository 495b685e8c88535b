import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { kernelName, partitionPath, sysfsPartitionName } from '../../src/disk/partition-names.ts';

describe('partitionPath', () => {
  const cases: [string, number, string][] = [
    ['/dev/sda', 1, '/dev/sda1'],
    ['/dev/sdab', 12, '/dev/sdab12'],
    ['/dev/vda', 2, '/dev/vda2'],
    ['/dev/xvda', 1, '/dev/xvda1'],
    ['/dev/hda', 5, '/dev/hda5'],
    ['/dev/nvme0n1', 1, '/dev/nvme0n1p1'],
    ['/dev/nvme10n2', 3, '/dev/nvme10n2p3'],
    ['/dev/mmcblk0', 1, '/dev/mmcblk0p1'],
    ['/dev/loop0', 2, '/dev/loop0p2'],
    ['/dev/loop12', 1, '/dev/loop12p1'],
    ['/dev/md0', 1, '/dev/md0p1'],
    ['/dev/disk/by-id/wwn-0x5000c500a1b2c3d4', 2, '/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part2'],
    ['/dev/disk/by-path/pci-0000:00:04.0', 1, '/dev/disk/by-path/pci-0000:00:04.0-part1'],
  ];
  for (const [disk, n, want] of cases) {
    it(`${disk} + ${n} -> ${want}`, () => assert.equal(partitionPath(disk, n), want));
  }
  it('rejects partition numbers that cannot exist', () => {
    assert.throws(() => partitionPath('/dev/sda', 0), RangeError);
    assert.throws(() => partitionPath('/dev/sda', 1.5), RangeError);
  });
});

describe('kernelName and sysfsPartitionName', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-pnames-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('follows symlinks to the kernel name', () => {
    fs.writeFileSync(path.join(dir, 'nvme0n1'), '');
    fs.symlinkSync(path.join(dir, 'nvme0n1'), path.join(dir, 'by-id-link'));
    assert.equal(kernelName(path.join(dir, 'by-id-link')), 'nvme0n1');
    assert.equal(kernelName('/dev/does-not-exist-sdz'), 'does-not-exist-sdz');
  });

  it('finds a partition by number in a sysfs-shaped tree', () => {
    const sys = path.join(dir, 'sys');
    for (const [name, num] of [['nvme0n1p1', 1], ['nvme0n1p2', 2], ['nvme0n1p10', 10]] as const) {
      fs.mkdirSync(path.join(sys, 'nvme0n1', name), { recursive: true });
      fs.writeFileSync(path.join(sys, 'nvme0n1', name, 'partition'), `${num}\n`);
    }
    fs.mkdirSync(path.join(sys, 'nvme0n1', 'queue'));
    assert.equal(sysfsPartitionName('nvme0n1', 2, sys), 'nvme0n1p2');
    assert.equal(sysfsPartitionName('nvme0n1', 10, sys), 'nvme0n1p10');
    assert.equal(sysfsPartitionName('nvme0n1', 3, sys), undefined);
    assert.equal(sysfsPartitionName('sdq', 1, sys), undefined);
  });
});
