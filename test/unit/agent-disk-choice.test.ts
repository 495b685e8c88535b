import { test } from 'node:test';
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
