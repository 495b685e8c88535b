// The MBR/GPT codecs against tables made by sfdisk on sparse files: grow the file like a larger
// disk, apply our plan, and let sfdisk and sgdisk judge the result.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { planGrow, readPartitionTable, detectTable } from '../../src/disk/partition-table/table.ts';
import { fdSectorSource, applyWritesToFd } from '../../src/disk/partition-table/fd-source.ts';
import type { GrowOptions, GrowPlan } from '../../src/disk/partition-table/types.ts';
import { isBootyError } from '../../src/util/errors.ts';
import { makeImage, makeImageFdisk, fdiskList, sfdiskJson, sgdiskVerify, growFile, tempDir } from '../helpers/sparse-disk-image.ts';

const MiB = 1024 * 1024;
const dir = tempDir('booty-ptable-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const file = (name: string) => path.join(dir, `${counter++}-${name}.img`);

function growImage(img: string, opts: GrowOptions, sectorSize = 512): GrowPlan {
  const fd = fs.openSync(img, 'r+');
  try {
    const src = fdSectorSource(fd, fs.fstatSync(fd).size, sectorSize);
    const plan = planGrow(src, opts);
    applyWritesToFd(fd, plan.writes);
    return plan;
  } finally {
    fs.closeSync(fd);
  }
}

/** sfdisk --verify's verdict (it exits 0 either way). */
function sfdiskVerify(img: string): string {
  return execFileSync('sfdisk', ['--verify', img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function expectGrowError(fn: () => unknown, code: RegExp, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isBootyError(e), `expected a BootyError, got ${String(e)}`);
    assert.equal(e.stage, 'grow');
    assert.match(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

describe('MBR', () => {
  it('grows a single partition to the end of a larger disk', () => {
    const img = file('mbr1');
    makeImage(img, 64 * MiB, 'label: dos\n,20M,83\n');
    growFile(img, 200 * MiB);
    const plan = growImage(img, { partition: 1 });
    assert.equal(plan.table, 'mbr');
    assert.equal(plan.changed, true);
    const t = sfdiskJson(img);
    assert.equal(t.partitions[0].start, 2048);
    assert.equal(t.partitions[0].start + t.partitions[0].size, (200 * MiB) / 512, 'ends at the last sector');
    assert.equal(plan.newEnd, (200 * MiB) / 512 - 1);
    assert.match(sfdiskVerify(img), /No errors detected/);
  });

  it('grows the last of two primaries, chosen as "last", and leaves the first alone', () => {
    const img = file('mbr2');
    makeImage(img, 100 * MiB, 'label: dos\n,30M,83,*\n,40M,8e\n');
    const before = sfdiskJson(img);
    growFile(img, 300 * MiB + 12345); // a size that is not a whole MiB: the end stays aligned
    const plan = growImage(img, { partition: 'last' });
    assert.equal(plan.partition, 2);
    const t = sfdiskJson(img);
    assert.deepEqual(t.partitions[0], before.partitions[0]);
    assert.equal(t.partitions[1].start, before.partitions[1].start);
    assert.equal(t.partitions[1].start + t.partitions[1].size, (300 * MiB) / 512);
    assert.equal(t.partitions[1].type, '8e');
  });

  it('grows a logical partition and its extended container', () => {
    const img = file('mbr-logical');
    makeImage(img, 100 * MiB, 'label: dos\n,20M,83\n,,5\n,30M,82\n,,8e\n');
    const before = sfdiskJson(img);
    assert.equal(before.partitions.length, 4, 'sda1, sda2 (extended), sda5, sda6');
    growFile(img, 400 * MiB);
    const plan = growImage(img, { partition: 'last' });
    assert.equal(plan.partition, 6);
    const t = sfdiskJson(img);
    const byNode = (n: string) => t.partitions.find((p) => p.node.endsWith(n));
    const p2 = byNode('img2');
    const p5 = byNode('img5');
    const p6 = byNode('img6');
    assert.ok(p2 && p5 && p6);
    const endSector = (400 * MiB) / 512;
    assert.equal(p2.start + p2.size, endSector, 'extended container reaches the end');
    assert.equal(p6.start + p6.size, endSector, 'logical partition reaches the end');
    assert.deepEqual(p5, before.partitions.find((p) => p.node.endsWith('img5')));
    assert.match(sfdiskVerify(img), /No errors detected/);
  });

  it('refuses to grow a partition that another one follows', () => {
    const img = file('mbr-notlast');
    makeImage(img, 100 * MiB, 'label: dos\n,30M\n,30M\n');
    growFile(img, 200 * MiB);
    const bytes = fs.readFileSync(img).subarray(0, 512);
    expectGrowError(() => growImage(img, { partition: 1 }), /partition-not-last/, /partition 2 .* lies behind it/);
    assert.deepEqual(fs.readFileSync(img).subarray(0, 512), bytes, 'nothing written');
  });

  it('refuses an extended container and names the logical partition to grow instead', () => {
    const img = file('mbr-ext');
    makeImage(img, 100 * MiB, 'label: dos\n,20M\n,,5\n,,83\n');
    growFile(img, 200 * MiB);
    assert.throws(() => growImage(img, { partition: 2 }), (e: unknown) =>
      isBootyError(e) && e.code === 'extended-partition' && /logical partition 5/.test(e.hint ?? ''));
  });

  it('refuses a partition number that does not exist', () => {
    const img = file('mbr-nosuch');
    makeImage(img, 64 * MiB, 'label: dos\n,20M\n');
    expectGrowError(() => growImage(img, { partition: 3 }), /no-such-partition/, /partition 3 does not exist .*has 1/);
  });

  it('is a no-op when the partition already fills the disk', () => {
    const img = file('mbr-full');
    makeImage(img, 64 * MiB, 'label: dos\n,\n');
    const plan = growImage(img, { partition: 1 });
    assert.equal(plan.changed, false);
    assert.equal(plan.writes.length, 0);
  });

  it('stops at 2 TiB, the most an MBR can address, and says so', () => {
    const img = file('mbr-3t');
    makeImage(img, 64 * MiB, 'label: dos\n,20M\n');
    growFile(img, 3 * 1024 * 1024 * MiB);
    const plan = growImage(img, { partition: 1 });
    assert.equal(plan.newEnd, 0xffffffff);
    assert.match(plan.notes.join(' '), /2 TiB/);
    const t = sfdiskJson(img);
    assert.equal(t.partitions[0].start + t.partitions[0].size, 2 ** 32);
  });
});

describe('GPT', () => {
  it('grows the last partition, moves the backup table to the new end, keeps sgdisk happy', () => {
    const img = file('gpt3');
    makeImage(img, 100 * MiB,
      'label: gpt\n,1M,21686148-6449-6E6F-744E-656564454649\n,30M\n,,E6D6D379-F507-44C2-A23C-238F2A3DF928\n');
    const before = sfdiskJson(img);
    growFile(img, 500 * MiB);
    assert.match(sgdiskVerify(img), /problem/i, 'before: the backup header is not at the end');
    const plan = growImage(img, { partition: 'last' });
    assert.equal(plan.partition, 3);
    assert.match(sgdiskVerify(img), /No problems found/);
    assert.match(sfdiskVerify(img), /No errors detected/);
    const t = sfdiskJson(img);
    const sectors = (500 * MiB) / 512;
    assert.equal(t.lastlba, sectors - 34, 'LastUsableLBA before the 32-sector backup array and header');
    assert.deepEqual(t.partitions.slice(0, 2), before.partitions.slice(0, 2));
    const p3 = t.partitions[2];
    assert.equal(p3.start, before.partitions[2].start);
    assert.equal((p3.start + p3.size) % 2048, 0, 'ends on a MiB boundary');
    assert.ok(p3.start + p3.size - 1 <= sectors - 34);
    assert.ok(p3.start + p3.size - 1 > sectors - 34 - 2048, 'within one MiB of the end');
    assert.equal(p3.type, 'E6D6D379-F507-44C2-A23C-238F2A3DF928');
    // The protective MBR now covers the whole disk.
    const mbr = fs.readFileSync(img).subarray(0, 512);
    assert.equal(mbr.readUInt32LE(446 + 12), sectors - 1);
  });

  it('picks the physically last partition for "last", whatever its number', () => {
    const img = file('gpt-order');
    makeImage(img, 100 * MiB, 'label: gpt\n1: start=60M size=20M\n2: start=1M size=30M\n');
    growFile(img, 300 * MiB);
    const plan = growImage(img, { partition: 'last' });
    assert.equal(plan.partition, 1);
    assert.match(sgdiskVerify(img), /No problems found/);
    const t = sfdiskJson(img);
    const p1 = t.partitions.find((p) => p.node.endsWith('img1'));
    assert.ok(p1);
    assert.equal(p1.start, (60 * MiB) / 512);
    assert.equal(p1.start + p1.size, ((300 - 1) * MiB) / 512, 'aligned end within the last MiB');
  });

  it('refuses to grow a partition that another one follows, writing nothing', () => {
    const img = file('gpt-notlast');
    makeImage(img, 100 * MiB, 'label: gpt\n,30M\n,30M\n');
    growFile(img, 200 * MiB);
    const before = fs.readFileSync(img);
    expectGrowError(() => growImage(img, { partition: 1 }), /partition-not-last/, /partition 2 .* lies behind it/);
    assert.ok(fs.readFileSync(img).equals(before));
  });

  it('works with 4096-byte sectors', () => {
    const img = file('gpt4k');
    makeImageFdisk(img, 64 * MiB, 4096, 'g\nn\n1\n\n+8M\nn\n2\n\n\nw\n');
    const before = fdiskList(img, 4096);
    assert.equal(before.partitions.length, 2);
    growFile(img, 256 * MiB);
    assert.match(fdiskList(img, 4096).text, /not on the end of the device/);
    const plan = growImage(img, { partition: 2 }, 4096);
    assert.equal(plan.sectorSize, 4096);
    assert.equal(plan.newEnd, ((256 - 1) * MiB) / 4096 - 1, 'aligned end, the last MiB holds the backup table');
    const afterList = fdiskList(img, 4096);
    assert.doesNotMatch(afterList.text, /mismatch|not on the end|corrupt|invalid/i);
    assert.deepEqual(afterList.partitions, [before.partitions[0], [before.partitions[1][0], plan.newEnd]]);
  });

  it('is idempotent: a second grow changes nothing', () => {
    const img = file('gpt-twice');
    makeImage(img, 64 * MiB, 'label: gpt\n,\n');
    growFile(img, 128 * MiB);
    assert.equal(growImage(img, { partition: 1 }).changed, true);
    const second = growImage(img, { partition: 1 });
    assert.equal(second.changed, false);
    assert.deepEqual(second.writes, []);
  });

  it('refuses a table whose header CRC is wrong', () => {
    const img = file('gpt-crc');
    makeImage(img, 64 * MiB, 'label: gpt\n,20M\n');
    const fd = fs.openSync(img, 'r+');
    fs.writeSync(fd, Buffer.from([0x42]), 0, 1, 512 + 60); // a byte of the disk GUID
    fs.closeSync(fd);
    expectGrowError(() => growImage(img, { partition: 1 }), /gpt-corrupt/, /header CRC mismatch/);
  });

  it('refuses when the table describes more than the disk holds (image larger than disk)', () => {
    const img = file('gpt-small');
    makeImage(img, 100 * MiB, 'label: gpt\n,\n');
    growFile(img, 50 * MiB);
    expectGrowError(() => growImage(img, { partition: 1 }), /partition-past-end|gpt-corrupt/, /larger than the disk|past the end/);
  });
});

describe('table detection', () => {
  it('reads both kinds and refuses a disk without a table', () => {
    const gpt = file('det-gpt');
    makeImage(gpt, 64 * MiB, 'label: gpt\n,10M\n,10M\n');
    const mbr = file('det-mbr');
    makeImage(mbr, 64 * MiB, 'label: dos\n,10M\n');
    const blank = file('det-blank');
    growFile(blank, 64 * MiB);
    const fds: number[] = [];
    const read = (img: string) => {
      const fd = fs.openSync(img, 'r');
      fds.push(fd);
      return fdSectorSource(fd, fs.fstatSync(fd).size, 512);
    };
    const sg = read(gpt);
    assert.equal(detectTable(sg), 'gpt');
    assert.deepEqual(readPartitionTable(sg).partitions.map((p) => [p.number, p.start, p.end]), [[1, 2048, 22527], [2, 22528, 43007]]);
    assert.equal(detectTable(read(mbr)), 'mbr');
    const sb = read(blank);
    assert.equal(detectTable(sb), 'none');
    expectGrowError(() => planGrow(sb, { partition: 1 }), /unknown-partition-table/, /no MBR or GPT partition table/);
    // an ext4 filesystem written straight onto the disk (no table) is refused too
    execFileSync('mkfs.ext4', ['-q', '-F', blank], { stdio: 'ignore' });
    expectGrowError(() => planGrow(read(blank), { partition: 'last' }), /unknown-partition-table/, /no MBR or GPT/);
    for (const fd of fds) fs.closeSync(fd);
  });
});
