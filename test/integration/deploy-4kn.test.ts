// 4Kn disks: real loop devices with 4096-byte logical sectors (losetup --sector-size 4096) and
// images whose partition tables were made by sfdisk, on a file (512-byte sectors) or on a 4Kn loop
// device (4096-byte sectors). An image made for the other sector size is refused before the first
// write, saying why and what to do, and the disk keeps every byte; a matching one is written, and
// sfdisk then reads the partition back from the device at the place the image put it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { runBooty } from '../helpers/booty-cli.ts';
import { detachAllLoops, detachLoop } from '../helpers/loop-device.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const MiB = 1 << 20;
const have = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const isRoot = process.getuid?.() === 0;
const skip = skipUnlessPresent(isRoot && have('losetup') && have('sfdisk'), !isRoot ? 'needs root (loop devices)' : 'needs losetup and sfdisk');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-4kn-'));
after(() => { detachAllLoops(); fs.rmSync(dir, { recursive: true, force: true }); });

const attached = new Set<string>();
function loop(file: string, sectorSize: 512 | 4096): string {
  const dev = execFileSync('losetup', ['-f', '--show', '--sector-size', String(sectorSize), file], { encoding: 'utf8' }).trim();
  attached.add(dev);
  return dev;
}
function unloop(dev: string): void { detachLoop(dev); attached.delete(dev); }
after(() => { for (const d of attached) detachLoop(d); });

function file(name: string, bytes: number, random = false): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, random ? randomBytes(bytes) : Buffer.alloc(0));
  fs.truncateSync(p, bytes);
  return p;
}
const sha = (p: string) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

/** A 16 MiB image with a GPT made by sfdisk for `sectorSize`: on a plain file (512), or on a 4Kn loop device (4096). */
function gptImage(name: string, sectorSize: 512 | 4096, label = 'gpt'): string {
  const p = file(name, 16 * MiB);
  const script = label === 'gpt' ? 'label: gpt\nstart=1MiB, size=8MiB, type=linux\n' : `label: dos\nstart=${sectorSize === 512 ? 2048 : 256}, type=83\n`;
  if (sectorSize === 512) {
    execFileSync('sfdisk', ['-q', p], { input: script });
  } else {
    const dev = loop(p, 4096);
    try { execFileSync('sfdisk', ['-q', '--no-reread', dev], { input: script }); } finally { unloop(dev); }
  }
  return p;
}

function partitionsOn(dev: string): { start: number; size: number }[] {
  const j = JSON.parse(execFileSync('sfdisk', ['-J', dev], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as { partitiontable: { sectorsize?: number; partitions: { start: number; size: number }[] } };
  return j.partitiontable.partitions.map((p) => ({ start: p.start, size: p.size }));
}

test('an image whose GPT was made for 512-byte sectors is refused on a 4Kn disk before writing; accepted on a 512-byte disk', { skip }, async () => {
  const img = gptImage('gpt512.img', 512);
  const gz = path.join(dir, 'gpt512.img.gz');
  fs.writeFileSync(gz, zlib.gzipSync(fs.readFileSync(img)));
  const target = file('disk4k.img', 32 * MiB, true);
  const before = sha(target);
  const dev = loop(target, 4096);
  assert.equal(fs.readFileSync(`/sys/class/block/${path.basename(dev)}/queue/logical_block_size`, 'utf8').trim(), '4096');
  for (const image of [img, gz]) {
    const r = await runBooty(['deploy', '--image', image, '--disk', dev, '-q']);
    assert.notEqual(r.status, 0, r.err);
    assert.match(r.err, /its partition table was made for 512-byte sectors \(its GPT header is at byte 512/);
    assert.match(r.err, /has 4096-byte logical sectors \(a 4Kn disk\)/);
    assert.match(r.err, /use an image built for 4096-byte sectors/);
    assert.match(r.err, /the disk was not written/);
  }
  unloop(dev);
  assert.equal(sha(target), before, 'the 4Kn disk keeps every byte');

  const target512 = file('disk512.img', 32 * MiB, true);
  const dev512 = loop(target512, 512);
  const ok = await runBooty(['deploy', '--image', gz, '--disk', dev512, '-q']);
  assert.equal(ok.status, 0, ok.err);
  assert.deepEqual(partitionsOn(dev512), [{ start: 2048, size: 16384 }]);
  unloop(dev512);
});

test('an image with a GPT made for 4096-byte sectors (sfdisk on a 4Kn device) is written to a 4Kn disk, refused on a 512-byte one', { skip }, async () => {
  const img = gptImage('gpt4k.img', 4096);
  assert.equal(fs.readFileSync(img).toString('latin1', 4096, 4104), 'EFI PART', 'sfdisk put the header at LBA 1 of 4096-byte sectors');
  const target = file('disk4k-b.img', 32 * MiB, true);
  const dev = loop(target, 4096);
  const r = await runBooty(['deploy', '--image', img, '--disk', dev, '-q']);
  assert.equal(r.status, 0, r.err);
  // sfdisk reads it back from the 4Kn device: 1 MiB = 256 sectors, 8 MiB = 2048 sectors
  assert.deepEqual(partitionsOn(dev), [{ start: 256, size: 2048 }]);
  unloop(dev);

  const target512 = file('disk512-b.img', 32 * MiB, true);
  const before = sha(target512);
  const dev512 = loop(target512, 512);
  const refused = await runBooty(['deploy', '--image', img, '--disk', dev512, '-q']);
  assert.notEqual(refused.status, 0);
  assert.match(refused.err, /made for 4096-byte sectors .* but \/dev\/loop\d+ has 512-byte logical sectors/);
  unloop(dev512);
  assert.equal(sha(target512), before);
});

test('an MBR image laid out for 512-byte sectors (first partition at 2048) is refused on a 4Kn disk; one at 256 is accepted', { skip }, async () => {
  const mbr512 = gptImage('mbr512.img', 512, 'dos');
  const target = file('disk4k-c.img', 32 * MiB, true);
  const before = sha(target);
  const dev = loop(target, 4096);
  const r = await runBooty(['deploy', '--image', mbr512, '--disk', dev, '-q']);
  assert.notEqual(r.status, 0);
  assert.match(r.err, /its MBR's first partition starts at sector 2048 \(a 512-byte-sector layout\)/);
  unloop(dev);
  assert.equal(sha(target), before);

  const mbr4k = gptImage('mbr4k.img', 4096, 'dos');
  const dev2 = loop(target, 4096);
  const ok = await runBooty(['deploy', '--image', mbr4k, '--disk', dev2, '-q']);
  assert.equal(ok.status, 0, ok.err);
  assert.equal(partitionsOn(dev2)[0].start, 256);
  unloop(dev2);
});
