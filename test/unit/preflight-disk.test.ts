import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkImageFits, parseMountinfo, parseSwaps, preflightDisk } from '../../src/disk/preflight.ts';
import { BootyError } from '../../src/util/errors.ts';

function tmp(): string { return fs.mkdtempSync(path.join(os.tmpdir(), 'booty-preflight-')); }

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

function code(fn: () => unknown): string {
  try { fn(); } catch (e) { assert.ok(e instanceof BootyError, String(e)); assert.equal(e.stage, 'preflight'); assert.equal(e.diskState, 'untouched'); return e.code; }
  return 'passed';
}

const MOUNTINFO = [
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '30 22 8:17 / /mnt/my\\040disk rw,relatime shared:2 - ext4 /dev/sdb1 rw',
  '31 22 0:26 / /proc rw - proc proc rw',
].join('\n');

test('mountinfo and swaps parsing, octal escapes included', () => {
  const m = parseMountinfo(MOUNTINFO + '\n');
  assert.equal(m.length, 3);
  assert.deepEqual(m[1], { dev: '8:17', mountPoint: '/mnt/my disk', fsType: 'ext4', source: '/dev/sdb1' });
  assert.deepEqual(parseSwaps('Filename Type Size Used Priority\n/dev/sda2  partition 100 0 -2\n/swap\\040file file 1 0 -3\n'), ['/dev/sda2', '/swap file']);
});

test('regular files: size, refused when attached to a loop device or used as swap', () => {
  const dir = tmp();
  const file = path.join(dir, 'disk.img');
  fs.writeFileSync(file, Buffer.alloc(8192));
  const sys = path.join(dir, 'sys');
  const proc = path.join(dir, 'proc');
  write(path.join(proc, 'self/mountinfo'), MOUNTINFO);
  write(path.join(proc, 'swaps'), 'Filename Type Size Used Priority\n');
  fs.mkdirSync(path.join(sys, 'block'), { recursive: true });
  const info = preflightDisk(file, { mode: 'write', sysRoot: sys, procRoot: proc });
  assert.equal(info.kind, 'file');
  assert.equal(info.size, 8192);
  write(path.join(sys, 'block/loop3/loop/backing_file'), fs.realpathSync(file) + '\n');
  assert.equal(code(() => preflightDisk(file, { mode: 'write', sysRoot: sys, procRoot: proc })), 'DISK_IN_USE');
  fs.rmSync(path.join(sys, 'block/loop3'), { recursive: true });
  write(path.join(proc, 'swaps'), `Filename Type Size Used Priority\n${fs.realpathSync(file)} file 8 0 -2\n`);
  assert.equal(code(() => preflightDisk(file, { mode: 'write', sysRoot: sys, procRoot: proc })), 'DISK_IN_USE');
  assert.equal(code(() => preflightDisk(path.join(dir, 'missing'), { mode: 'write', sysRoot: sys, procRoot: proc })), 'DISK_NOT_FOUND');
  assert.equal(code(() => preflightDisk('/dev/null', { mode: 'write', sysRoot: sys, procRoot: proc })), 'DISK_NOT_BLOCK');
  fs.rmSync(dir, { recursive: true });
});

/** Any block device node on this machine, to stat (its sysfs is faked below). */
function someBlockDevice(): { node: string; dev: string } | undefined {
  for (const name of fs.readdirSync('/dev')) {
    try {
      const st = fs.statSync(path.join('/dev', name), { bigint: true });
      if (!st.isBlockDevice()) continue;
      const major = ((st.rdev >> 8n) & 0xfffn) | ((st.rdev >> 32n) & ~0xfffn);
      const minor = (st.rdev & 0xffn) | ((st.rdev >> 12n) & ~0xffn);
      return { node: path.join('/dev', name), dev: `${major}:${minor}` };
    } catch { /* next */ }
  }
  return undefined;
}

test('block devices: whole disk, partitions, mounts, holders (fake sysfs)', (t) => {
  const bd = someBlockDevice();
  if (bd === undefined) { t.skip('no block device node to stat here'); return; }
  const dir = tmp();
  const sys = path.join(dir, 'sys');
  const proc = path.join(dir, 'proc');
  // the device looks like disk "vdz" with partitions vdz1, vdz2
  const disk = path.join(sys, 'devices/virtual/block/vdz');
  write(path.join(disk, 'size'), '2097152\n');
  write(path.join(disk, 'dev'), `${bd.dev}\n`);
  write(path.join(disk, 'queue/write_zeroes_max_bytes'), '4294966784\n');
  write(path.join(disk, 'queue/logical_block_size'), '512\n');
  fs.mkdirSync(path.join(disk, 'holders'));
  for (const [p, mm] of [['vdz1', '259:101'], ['vdz2', '259:102']]) {
    write(path.join(disk, p, 'partition'), '1\n');
    write(path.join(disk, p, 'dev'), `${mm}\n`);
    fs.mkdirSync(path.join(disk, p, 'holders'));
  }
  fs.mkdirSync(path.join(sys, 'dev/block'), { recursive: true });
  fs.symlinkSync(disk, path.join(sys, 'dev/block', bd.dev));
  write(path.join(proc, 'self/mountinfo'), MOUNTINFO);
  write(path.join(proc, 'swaps'), 'Filename Type Size Used Priority\n');
  const opts = { mode: 'write' as const, sysRoot: sys, procRoot: proc };

  const info = preflightDisk(bd.node, opts);
  assert.equal(info.kind, 'block');
  assert.equal(info.name, 'vdz');
  assert.equal(info.size, 2097152 * 512);
  assert.deepEqual(info.partitions.sort(), ['vdz1', 'vdz2']);
  assert.equal(info.writeZeroesMaxBytes, 4294966784);

  write(path.join(proc, 'self/mountinfo'), MOUNTINFO + '\n40 22 259:102 / /boot rw - vfat /dev/vdz2 rw');
  assert.equal(code(() => preflightDisk(bd.node, opts)), 'DISK_MOUNTED');
  assert.equal(code(() => preflightDisk(bd.node, { ...opts, mode: 'read' })), 'DISK_MOUNTED');
  assert.equal(preflightDisk(bd.node, { ...opts, mode: 'read', allowMounted: true }).name, 'vdz');
  write(path.join(proc, 'self/mountinfo'), MOUNTINFO);

  fs.mkdirSync(path.join(disk, 'vdz1/holders/dm-0'));
  assert.equal(code(() => preflightDisk(bd.node, opts)), 'DISK_HELD');
  fs.rmdirSync(path.join(disk, 'vdz1/holders/dm-0'));

  write(path.join(proc, 'swaps'), 'Filename Type Size Used Priority\n/dev/vdz1 partition 1 0 -2\n');
  assert.equal(code(() => preflightDisk(bd.node, opts)), 'DISK_IN_USE');
  write(path.join(proc, 'swaps'), 'Filename Type Size Used Priority\n');

  // the same node seen as a partition
  fs.unlinkSync(path.join(sys, 'dev/block', bd.dev));
  fs.symlinkSync(path.join(disk, 'vdz1'), path.join(sys, 'dev/block', bd.dev));
  assert.equal(code(() => preflightDisk(bd.node, opts)), 'DISK_IS_PARTITION');
  assert.equal(preflightDisk(bd.node, { ...opts, allowPartition: true }).isPartition, true);
  fs.rmSync(dir, { recursive: true });
});

test('size check: larger images are refused before any write; empty files grow', () => {
  const info = { path: '/dev/x', kind: 'block' as const, size: 1000, isPartition: false, partitions: [] };
  checkImageFits(info, 1000, 'test');
  checkImageFits(info, undefined, 'test');
  assert.equal(code(() => checkImageFits(info, 1001, 'the zstd frame header')), 'DISK_TOO_SMALL');
  checkImageFits({ ...info, kind: 'file', size: 0 }, 1e12, 'test');
});
