// xz and bzip2 images as operators download them, made by the real tools (xz -T2 multi-block,
// xz single-block, concatenated .xz files, every check type; bzip2, lbzip2, concatenated .bz2):
// deployed bit-exact against `xz -dc` / `bzip2 -dc` onto disks that held garbage (zero runs must
// really be zero), from a file and over HTTP through a fault proxy that cuts, resets and stalls
// (resumed below the decoder); damaged ones (flips and truncation in header, data and trailer,
// garbage after the end) fail with their stage, code and disk state; a missing library is refused
// before the first write.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deploy } from '../../src/image/deploy.ts';
import { blockBytes, parseBlockHeader, type XzBlockHeader } from '../../src/image/format/xz-container.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import { runBooty } from '../helpers/booty-cli.ts';
import { startStaticOrigin, type StaticOrigin } from '../helpers/static-origin.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (xz, bzip2 and lbzip2 installed by scripts/host-deps.sh)' : false;
const MiB = 1 << 20;
const DISK = 40 * MiB;

let dir: string;
let origin: StaticOrigin;
let originUrl: string;
let raw: Buffer;
let garbage: Buffer;

const sh = (cmd: string) => execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * MiB });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** image file -> the tool that must decode it to `raw` (the judge), and how booty decodes it on
 *  2+ cores: 'blocks' (bzip2: block-decode workers from the first block on, output in order),
 *  'placed' (xz blocks that say their sizes: each written at its offset by its worker; more in
 *  deploy-xz-placed.test.ts), 'switch' (placed blocks until a later stream whose blocks cannot be
 *  cut, then the deploy starts over: blocks in order, then one stream from there), 'stream' (one
 *  stream throughout) */
const images: Array<{ file: string; make: string; judge: string; format: 'xz' | 'bzip2'; path: 'blocks' | 'placed' | 'switch' | 'stream' }> = [
  { file: 'mt.xz', make: 'xz -T2 --block-size=4MiB -c disk.raw > mt.xz', judge: 'xz -dc mt.xz', format: 'xz', path: 'placed' },
  { file: 'mt1m.xz', make: 'xz -T2 --block-size=1MiB -c disk.raw > mt1m.xz', judge: 'xz -dc mt1m.xz', format: 'xz', path: 'placed' },
  { file: 'single.xz', make: 'xz -T1 -6 -c disk.raw > single.xz', judge: 'xz -dc single.xz', format: 'xz', path: 'stream' },
  { file: 'sha256.xz', make: 'xz -T2 --block-size=2MiB --check=sha256 -c disk.raw > sha256.xz', judge: 'xz -dc sha256.xz', format: 'xz', path: 'placed' },
  // blocks over the old in-order budget (4 MiB): written at their offsets as the small ones
  { file: 'mt8.xz', make: 'xz -T2 --block-size=8MiB --check=sha256 -c disk.raw > mt8.xz', judge: 'xz -dc mt8.xz', format: 'xz', path: 'placed' },
  { file: 'crc32.xz', make: 'xz -T2 --block-size=3MiB --check=crc32 -c disk.raw > crc32.xz', judge: 'xz -dc crc32.xz', format: 'xz', path: 'placed' },
  { file: 'mtnone.xz', make: 'xz -T2 --block-size=4MiB --check=none -c disk.raw > mtnone.xz', judge: 'xz -dc mtnone.xz', format: 'xz', path: 'placed' },
  { file: 'nocheck.xz', make: 'xz -T1 --check=none -1 -c disk.raw > nocheck.xz', judge: 'xz -dc nocheck.xz', format: 'xz', path: 'stream' },
  { file: 'cat.xz', make: 'head -c 10485760 disk.raw | xz -T1 -c > cat.xz && tail -c +10485761 disk.raw | xz -T2 --block-size=2MiB -c >> cat.xz', judge: 'xz -dc cat.xz', format: 'xz', path: 'stream' },
  // two multi-block streams with stream padding between them, then a single-block stream
  { file: 'catpad.xz', make: 'head -c 8388608 disk.raw | xz -T2 --block-size=1MiB -c > catpad.xz && printf "\\0\\0\\0\\0\\0\\0\\0\\0" >> catpad.xz && head -c 16777216 disk.raw | tail -c +8388609 | xz -T2 --block-size=3MiB --check=sha256 -c >> catpad.xz && tail -c +16777217 disk.raw | xz -T1 -c >> catpad.xz', judge: 'xz -dc catpad.xz', format: 'xz', path: 'switch' },
  // pixz's blocks here are 16 MiB
  { file: 'px.xz', make: 'pixz < disk.raw > px.xz', judge: 'xz -dc px.xz', format: 'xz', path: 'placed' },
  { file: 'px4.xz', make: 'pixz -f 0.5 < disk.raw > px4.xz', judge: 'xz -dc px4.xz', format: 'xz', path: 'placed' },
  { file: 'd.bz2', make: 'bzip2 -c disk.raw > d.bz2', judge: 'bzip2 -dc d.bz2', format: 'bzip2', path: 'blocks' },
  { file: 'd1.bz2', make: 'bzip2 -1 -c disk.raw > d1.bz2', judge: 'bzip2 -dc d1.bz2', format: 'bzip2', path: 'blocks' },
  { file: 'lb.bz2', make: 'lbzip2 -n 2 -c disk.raw > lb.bz2', judge: 'bzip2 -dc lb.bz2', format: 'bzip2', path: 'blocks' },
  { file: 'pb.bz2', make: 'pbzip2 -p2 -c disk.raw > pb.bz2', judge: 'bzip2 -dc pb.bz2', format: 'bzip2', path: 'blocks' },
  { file: 'cat.bz2', make: 'head -c 10485760 disk.raw | bzip2 -1 -c > cat.bz2 && tail -c +10485761 disk.raw | bzip2 -9 -c >> cat.bz2', judge: 'bzip2 -dc cat.bz2', format: 'bzip2', path: 'blocks' },
];

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-xz-bz2-'));
  const rand = seededRandom(16);
  // an OS-like mix: noise (dense), text, and long zero runs (free space)
  raw = Buffer.alloc(24 * MiB);
  for (let i = 0; i < 6 * MiB; i++) raw[i] = Math.floor(rand() * 256);
  raw.write('booty decodes xz and bzip2 images as operators download them\n'.repeat(100_000), 8 * MiB, 'latin1');
  for (let i = 20 * MiB; i < 21 * MiB; i++) raw[i] = Math.floor(rand() * 256);
  raw[510] = 0x55; raw[511] = 0xaa;
  fs.writeFileSync(path.join(dir, 'disk.raw'), raw);
  garbage = Buffer.alloc(DISK);
  for (let i = 0; i < garbage.length; i += 4) garbage.writeUInt32LE(Math.floor(rand() * 2 ** 32), i);
  for (const i of images) {
    sh(i.make);
    assert.ok(sh(i.judge).equals(raw), `${i.judge} gives the image back`);
  }
  origin = await startStaticOrigin(dir);
  originUrl = origin.url;
});

after(async () => {
  origin?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function freshDisk(name: string): string {
  const p = path.join(dir, `${name}.disk`);
  fs.writeFileSync(p, garbage);
  return p;
}

for (const i of images) {
  test(`${i.file}: bit-exact with ${i.judge.split(' ')[0]}, from a file and over HTTP`, { skip }, async () => {
    for (const [where, url] of [['file', path.join(dir, i.file)], ['http', `${originUrl}/${i.file}`]] as const) {
      const disk = freshDisk(`${i.file}-${where}`);
      const r = await runBooty(['deploy', '-q', '--image', url, '--disk', disk]);
      assert.equal(r.status, 0, `${where}: ${r.err}`);
      assert.match(r.out, new RegExp(`OK: ${raw.length} bytes .*${i.format}\\)`), `${where}: ${r.out}\n${r.err}`);
      const got = fs.readFileSync(disk);
      assert.ok(got.subarray(0, raw.length).equals(raw), `${where}: the image, bit-exact (zero runs included)`);
      // (the disk's last MiB is zeroed by design: an old backup GPT must not survive)
      assert.ok(got.subarray(raw.length, DISK - MiB).equals(garbage.subarray(raw.length, DISK - MiB)), `${where}: nothing written past the image`);
      if (i.format === 'xz') assert.match(r.err, /decoding xz with liblzma \(liblzma\.so\.5\)/);
      // this machine has 2 cores or more (CI too): the block workers take what they can cut
      const byBlocks = new RegExp(`decoding ${i.format} with \\S+ \\(\\S+\\), block by block on \\d+ worker threads`);
      if (i.path === 'stream') assert.doesNotMatch(r.err, byBlocks, `${where}: one stream`);
      else assert.match(r.err, byBlocks, `${where}: ${r.err}`);
      if (i.path === 'switch') {
        assert.match(r.err, /each block written at its offset by its worker/, `${where}: placed first: ${r.err}`);
        assert.match(r.err, /the xz file goes on, at byte \d+, with a stream whose first block does not say its sizes .*: starting over from byte 0 with the blocks decoded in order/, `${where}: ${r.err}`);
        assert.match(r.err, /\(one stream from byte \d+\)/, `${where}: ${r.err}`);
      }
      if (i.path === 'placed') assert.match(r.err, /each block written at its offset by its worker/, `${where}: ${r.err}`);
      if (i.path === 'blocks' || i.path === 'stream') assert.doesNotMatch(r.err, /written at its offset/, `${where}: ${r.err}`);
    }
  });
}

interface Bad { name: string; make: (b: Buffer) => Buffer; from: string; code: string; message: RegExp }
const flip = (at: (b: Buffer) => number) => (b: Buffer) => { const c = Buffer.from(b); c[at(c)] ^= 0x10; return c; };
const bad: Bad[] = [
  { name: 'xz: flip in the stream header', from: 'mt.xz', make: flip(() => 7), code: 'IMAGE_CORRUPT', message: /the xz data is corrupt/ },
  { name: 'xz: flip in a block', from: 'mt.xz', make: flip((b) => b.length >> 1), code: 'IMAGE_CORRUPT', message: /the xz data is corrupt/ },
  { name: 'xz: flip in the index', from: 'single.xz', make: flip((b) => b.length - 20), code: 'IMAGE_CORRUPT', message: /the xz data is corrupt/ },
  // liblzma calls a stream cut inside its first block header corrupt rather than short: either is a refusal at the decompress stage
  { name: 'xz: truncated in the header', from: 'mt.xz', make: (b) => b.subarray(0, 20), code: 'IMAGE_TRUNCATED', message: /the xz (stream ends early|data is corrupt)/ },
  { name: 'xz: truncated in the middle', from: 'mt.xz', make: (b) => b.subarray(0, b.length >> 1), code: 'IMAGE_TRUNCATED', message: /the xz stream ends early/ },
  { name: 'xz: truncated in the footer', from: 'single.xz', make: (b) => b.subarray(0, b.length - 3), code: 'IMAGE_TRUNCATED', message: /the xz stream ends early/ },
  { name: 'xz: garbage after the end', from: 'single.xz', make: (b) => Buffer.concat([b, Buffer.from('not an xz stream, just junk')]), code: 'IMAGE_CORRUPT', message: /the xz data is corrupt/ },
  { name: 'xz: flip in a middle block of many (xz -T2 --block-size=1MiB)', from: 'mt1m.xz', make: flip((b) => b.length >> 1), code: 'IMAGE_CORRUPT', message: /the xz data is corrupt/ },
  { name: 'xz: flip in the index of a multi-block stream', from: 'mt.xz', make: flip((b) => b.length - 20), code: 'IMAGE_CORRUPT', message: /the xz data is corrupt/ },
  { name: 'xz: flip in the SHA-256 of a block', from: 'sha256.xz', make: flip((b) => { const h = parseBlockHeader(b.subarray(12)) as XzBlockHeader & { compressed: number }; return 12 + blockBytes(h, 10) - 5; }), code: 'IMAGE_CORRUPT', message: /the xz data is corrupt/ },
  { name: 'xz: truncated between blocks of many', from: 'mt1m.xz', make: (b) => b.subarray(0, Math.floor(b.length * 0.7)), code: 'IMAGE_TRUNCATED', message: /the xz stream ends early/ },
  { name: 'xz: garbage after a multi-block stream', from: 'mt.xz', make: (b) => Buffer.concat([b, Buffer.from('not an xz stream, just junk')]), code: 'IMAGE_CORRUPT', message: /the xz data is corrupt/ },
  { name: 'bzip2: flip in the middle of a pbzip2 file', from: 'pb.bz2', make: flip((b) => b.length >> 1), code: 'IMAGE_CORRUPT', message: /the bzip2 data is corrupt/ },
  { name: 'bzip2: flip in a bzip2 -1 block', from: 'd1.bz2', make: flip((b) => Math.floor(b.length * 0.3)), code: 'IMAGE_CORRUPT', message: /the bzip2 data is corrupt/ },
  { name: 'bzip2: truncated pbzip2 file', from: 'pb.bz2', make: (b) => b.subarray(0, Math.floor(b.length * 0.6)), code: 'IMAGE_TRUNCATED', message: /the bzip2 stream ends early/ },
  { name: 'bzip2: flip in a block', from: 'd.bz2', make: flip((b) => b.length >> 1), code: 'IMAGE_CORRUPT', message: /the bzip2 data is corrupt/ },
  { name: 'bzip2: flip in the stream CRC', from: 'd.bz2', make: flip((b) => b.length - 2), code: 'IMAGE_CORRUPT', message: /the bzip2 data is corrupt/ },
  { name: 'bzip2: truncated in the middle', from: 'lb.bz2', make: (b) => b.subarray(0, b.length >> 1), code: 'IMAGE_TRUNCATED', message: /the bzip2 stream ends early/ },
  { name: 'bzip2: truncated at the end', from: 'd.bz2', make: (b) => b.subarray(0, b.length - 4), code: 'IMAGE_TRUNCATED', message: /the bzip2 stream ends early/ },
  { name: 'bzip2: garbage after the end', from: 'd.bz2', make: (b) => Buffer.concat([b, Buffer.from('junk after the last stream')]), code: 'IMAGE_TRAILING_GARBAGE', message: /bytes after the end of the bzip2 data/ },
];

for (const c of bad) {
  test(`refused, never reported as success: ${c.name}`, { skip }, async () => {
    const file = `bad-${c.name.replace(/\W+/g, '-')}`;
    fs.writeFileSync(path.join(dir, file), c.make(fs.readFileSync(path.join(dir, c.from))));
    const disk = freshDisk(file);
    const r = await runBooty(['deploy', '-q', '--image', `${originUrl}/${file}`, '--disk', disk]);
    assert.equal(r.status, 5, r.err);
    assert.doesNotMatch(r.out, /OK/);
    assert.match(r.err, c.message);
    const after = fs.readFileSync(disk);
    if (/the disk was not written/.test(r.err)) assert.ok(after.equals(garbage), 'untouched, as it says');
    else {
      assert.match(r.err, /NOT bootable/);
      assert.ok(after.subarray(0, MiB).every((b) => b === 0), 'the first MiB is zero: the firmware skips this disk');
    }
  });
}

test('network faults: xz and bzip2 resumed with Range below the decoder, bit-exact', { skip }, async () => {
  const base = new URL(originUrl);
  for (const file of ['mt.xz', 'lb.bz2']) {
    const served = fs.statSync(path.join(dir, file)).size;
    for (let seed = 1; seed <= 3; seed++) {
      const proxy = await startFaultProxy({
        target: { host: base.hostname, port: Number(base.port) }, seed: seed * 13 + file.length,
        faults: { probability: { cut: 0.35, reset: 0.35, stall: 0.3 }, offset: { min: 1000, max: served }, stallMs: { min: 100, max: 600 }, maxFaults: 3 },
        cutGraceMs: 200,
      });
      const disk = freshDisk(`fault-${file}-${seed}`);
      try {
        const r = await deploy({ image: `${proxy.url}/${file}`, disk, sha256: sha(fs.readFileSync(path.join(dir, file))), stallTimeoutMs: 400, retryForMs: 30_000, backoffInitialMs: 20, backoffMaxMs: 200 });
        assert.equal(r.bytesWritten, raw.length);
        assert.equal(r.wireBytes, served, 'every served byte hashed exactly once');
        assert.ok(fs.readFileSync(disk).subarray(0, raw.length).equals(raw), `${file} seed ${seed}: bit-exact`);
      } finally {
        await proxy.close();
      }
    }
  }
});

test('without the library (BOOTY_LIBLZMA=0): refused before the first write, naming what to do', { skip }, async () => {
  const disk = freshDisk('nolib');
  const r = await new Promise<{ status: number | null; err: string }>((ok) => {
    const c = execFileSyncLike(['deploy', '-q', '--image', path.join(dir, 'mt.xz'), '--disk', disk], { ...process.env, BOOTY_LIBLZMA: '0' });
    ok(c);
  });
  assert.equal(r.status, 5, r.err);
  assert.match(r.err, /the image is xz-compressed and booty decodes it with liblzma\.so\.5, but liblzma\.so\.5 turned off by BOOTY_LIBLZMA=0; at byte 0; the disk was not written; install Debian's liblzma5/);
  assert.ok(fs.readFileSync(disk).equals(garbage));
});

function execFileSyncLike(args: string[], env: NodeJS.ProcessEnv): { status: number | null; err: string } {
  try {
    execFileSync(path.resolve(import.meta.dirname, '..', '..', 'bin', 'booty'), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    return { status: 0, err: '' };
  } catch (e) {
    const x = e as { status: number | null; stderr: Buffer };
    return { status: x.status, err: String(x.stderr) };
  }
}
