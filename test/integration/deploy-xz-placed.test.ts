// xz images whose blocks are larger than the in-order path's budget (what `xz -T0 -6` writes:
// 24 MiB blocks), decoded by the block workers and written by each worker at its block's own
// offset (src/image/parallel/xz-placed-writer.ts): made by the real xz, deployed onto loop
// devices that held random bytes (O_DIRECT writes, BLKZEROOUT for the zero runs), judged
// bit-exact against `xz -dc`; block boundaries that are not page-aligned (--block-size=5000000,
// 1000000), several check types, concatenated streams; corrupt block, truncation, a damaged
// index, an image larger than the disk, a decoded head that is no disk image, and a later stream
// that cannot be placed each fail with their stage, code and disk state; network faults resumed
// below the decoder with the bytes fetched again bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deploy } from '../../src/image/deploy.ts';
import { BootyError } from '../../src/util/errors.ts';
import { blockBytes, parseBlockHeader, type XzBlockHeader } from '../../src/image/format/xz-container.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import { runBooty, type BootyRun } from '../helpers/booty-cli.ts';
import { startStaticOrigin, type StaticOrigin } from '../helpers/static-origin.ts';
import { seededRandom } from '../helpers/seeded-random.ts';
import { attachLoop, detachLoop, detachAllLoops } from '../helpers/loop-device.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (loop devices; xz from scripts/host-deps.sh)' : false;
const MiB = 1 << 20;
/** an image that ends inside a page, so the last block's end is not aligned either */
const SIZE = 58 * MiB + 12345;
const DISK = 72 * MiB;

let dir: string;
let origin: StaticOrigin;
let raw: Buffer;
let garbage: Buffer;

const sh = (cmd: string) => execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * MiB });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** placed: the log must say each block was written at its offset (`env`: BOOTY_XZ_PLACE) */
const images: Array<{ file: string; make: string; env?: string }> = [
  // what distributions ship: xz -T0 at its default level, 24 MiB blocks (3 x the 8 MiB dictionary)
  { file: 't0.xz', make: 'xz -T0 -6 -c disk.raw > t0.xz' },
  { file: 'b24-sha256.xz', make: 'xz -T2 -1 --block-size=24MiB --check=sha256 -c disk.raw > b24-sha256.xz' },
  // block boundaries off the page grid: their partial pages are joined on the main thread
  { file: 'b5m.xz', make: 'xz -T2 -1 --block-size=5000000 -c disk.raw > b5m.xz' },
  // two streams (CRC32, then no check) with stream padding between them
  { file: 'cat.xz', make: 'head -c 30000000 disk.raw | xz -T2 -1 --block-size=12MiB --check=crc32 -c > cat.xz && printf "\\0\\0\\0\\0" >> cat.xz && tail -c +30000001 disk.raw | xz -T2 -1 --block-size=6MiB --check=none -c >> cat.xz' },
  // small blocks, placed too (the default since 2026-12-06): the head spans several blocks
  { file: 'b1m.xz', make: 'xz -T2 -0 --block-size=1000000 -c disk.raw > b1m.xz' },
];

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-xz-placed-'));
  const rand = seededRandom(24);
  // an OS-like mix: noise (dense), text, long zero runs (free space)
  raw = Buffer.alloc(SIZE);
  const noise = (from: number, len: number) => { for (let i = from; i < from + len; i++) raw[i] = Math.floor(rand() * 256); };
  noise(1 * MiB, 2 * MiB);
  raw.write('booty writes each xz block where it belongs on the disk\n'.repeat(150_000), 4 * MiB, 'latin1');
  noise(30 * MiB - 3000, MiB);
  raw.write('the last block ends inside a page\n'.repeat(80_000), 56 * MiB, 'latin1');
  raw.fill(0x5a, SIZE - 12345);
  raw[510] = 0x55; raw[511] = 0xaa;
  fs.writeFileSync(path.join(dir, 'disk.raw'), raw);
  garbage = Buffer.alloc(DISK);
  for (let i = 0; i < garbage.length; i += 4) garbage.writeUInt32LE(Math.floor(rand() * 2 ** 32), i);
  for (const i of images) {
    sh(i.make);
    assert.ok(sh(`xz -dc ${i.file}`).equals(raw), `xz -dc ${i.file} gives the image back`);
  }
  // xz -T0 -6 really wrote 24 MiB blocks that say their sizes
  const t0 = fs.readFileSync(path.join(dir, 't0.xz'));
  const h = parseBlockHeader(t0.subarray(12)) as XzBlockHeader;
  assert.equal(h.uncompressed, 24 * MiB);
  origin = await startStaticOrigin(dir);
});

after(async () => {
  detachAllLoops();
  origin?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs `fn` on a loop device over a file of random bytes `bytes` long; returns its result and
 *  what the disk holds afterwards (the file, read after the device is detached). */
async function onLoop<T>(name: string, fn: (dev: string) => Promise<T>, bytes = DISK): Promise<{ r: T; disk: Buffer }> {
  const file = path.join(dir, `${name}.disk`);
  fs.writeFileSync(file, garbage.subarray(0, bytes));
  const dev = attachLoop(file);
  let attached = true;
  try {
    const r = await fn(dev);
    detachLoop(dev);
    attached = false;
    return { r, disk: fs.readFileSync(file) };
  } finally {
    // (once only: the device number may belong to someone else's test right after)
    if (attached) detachLoop(dev);
    fs.rmSync(file, { force: true });
  }
}

async function booty(args: string[], env?: string): Promise<BootyRun> {
  const before = process.env.BOOTY_XZ_PLACE;
  if (env !== undefined) process.env.BOOTY_XZ_PLACE = env;
  try { return await runBooty(args); } finally {
    if (before === undefined) delete process.env.BOOTY_XZ_PLACE; else process.env.BOOTY_XZ_PLACE = before;
  }
}

for (const i of images) {
  test(`${i.file}: each block written at its offset by a worker, bit-exact with xz -dc on a loop device`, { skip }, async () => {
    const judge = sh(`xz -dc ${i.file}`);
    const { r, disk: got } = await onLoop(i.file, (dev) => booty(['deploy', '-q', '--image', `${origin.url}/${i.file}`, '--disk', dev], i.env));
    assert.equal(r.status, 0, r.err);
    assert.match(r.out, new RegExp(`OK: ${SIZE} bytes .*xz\\)`), r.out);
    assert.match(r.err, /block by block on \d+ worker threads, each block written at its offset by its worker/, r.err);
    assert.match(r.err, /as zero runs via BLKZEROOUT/, r.err);
    assert.ok(got.subarray(0, SIZE).equals(judge), 'the disk holds what xz -dc decodes, zero runs included');
    // the disk's last MiB is zeroed by design (an old backup GPT must not survive)
    assert.ok(got.subarray(SIZE, DISK - MiB).equals(garbage.subarray(SIZE, DISK - MiB)), 'nothing written past the image');
  });
}

test('BOOTY_XZ_PLACE=never: the same 24 MiB blocks go to liblzma\'s decoder as one stream, bit-exact', { skip }, async () => {
  const { r, disk: got } = await onLoop('never', (dev) => booty(['deploy', '-q', '--image', `${origin.url}/t0.xz`, '--disk', dev], 'never'));
  assert.equal(r.status, 0, r.err);
  assert.doesNotMatch(r.err, /written at its offset/);
  assert.ok(got.subarray(0, SIZE).equals(raw));
});

interface Bad { name: string; from: string; make: (b: Buffer) => Buffer; stage: 'decompress' | 'write'; message: RegExp; diskBytes?: number }
const EXIT = { decompress: 5, write: 7 };
const flip = (at: (b: Buffer) => number) => (b: Buffer) => { const c = Buffer.from(b); c[at(c)] ^= 0x10; return c; };
/** the byte offset of block `n`'s last check byte in a single-stream file with check type `check` */
function blockCheckByte(b: Buffer, n: number, check: number): number {
  let at = 12;
  for (let k = 0; ; k++) {
    const h = parseBlockHeader(b.subarray(at)) as XzBlockHeader & { compressed: number };
    const len = blockBytes(h, check);
    if (k === n) return at + len - 1;
    at += len;
  }
}
const bad: Bad[] = [
  { name: 'a flip in the middle of the second 24 MiB block', from: 't0.xz', make: flip((b) => blockCheckByte(b, 1, 4) - 200_000), stage: 'decompress', message: /the xz data is corrupt \(the xz block at byte \d+: corrupt data\)/ },
  { name: 'a flip in the first block\'s CRC64', from: 't0.xz', make: flip((b) => blockCheckByte(b, 0, 4)), stage: 'decompress', message: /the xz data is corrupt \(the xz block at byte 12: /  },
  { name: 'a flip in the SHA-256 of the last block', from: 'b24-sha256.xz', make: flip((b) => blockCheckByte(b, 2, 10)), stage: 'decompress', message: /the xz data is corrupt/ },
  { name: 'truncated in the middle', from: 't0.xz', make: (b) => b.subarray(0, b.length >> 1), stage: 'decompress', message: /the xz stream ends early/ },
  { name: 'truncated in the index', from: 'b5m.xz', make: (b) => b.subarray(0, b.length - 16), stage: 'decompress', message: /the xz stream ends early/ },
  { name: 'a flip in the index', from: 't0.xz', make: flip((b) => b.length - 16), stage: 'decompress', message: /the xz data is corrupt \(the index (at byte \d+ )?(is corrupt|does not match)/ },
  { name: 'an image larger than the disk (40 MiB)', from: 'b5m.xz', make: (b) => b, stage: 'write', message: /the image is larger than the disk \(\d+ bytes\): stopped before writing past its end/, diskBytes: 40 * MiB },
];

for (const c of bad) {
  test(`refused, never reported as success: ${c.name}`, { skip }, async () => {
    const file = `bad-${c.name.replace(/\W+/g, '-')}.xz`;
    fs.writeFileSync(path.join(dir, file), c.make(fs.readFileSync(path.join(dir, c.from))));
    const { r, disk: after } = await onLoop(file, (dev) => booty(['deploy', '-q', '--image', `${origin.url}/${file}`, '--disk', dev]), c.diskBytes);
    assert.equal(r.status, EXIT[c.stage], r.err);
    assert.doesNotMatch(r.out, /OK/);
    assert.match(r.err, new RegExp(`booty: ${c.stage}: `));
    assert.match(r.err, c.message);
    assert.match(r.err, /written at its offset/, 'the placed path ran');
    // (a damage the main thread finds before the first block's head was checked stops the
    // workers before any wrote: then the disk must be untouched, as the message says)
    if (/the disk was not written/.test(r.err)) assert.ok(after.equals(garbage.subarray(0, after.length)), 'untouched, as it says');
    else {
      assert.match(r.err, /NOT bootable/);
      assert.ok(after.subarray(0, MiB).every((b) => b === 0), 'the first MiB is zero: the firmware skips this disk');
    }
  });
}

test('stages and codes, from the library: a corrupt block is a decompress failure, the disk partially written', { skip }, async () => {
  const file = 'bad-lib.xz';
  fs.writeFileSync(path.join(dir, file), flip((b) => blockCheckByte(b, 1, 4) - 100_000)(fs.readFileSync(path.join(dir, 't0.xz'))));
  await onLoop(file, (dev) => assert.rejects(deploy({ image: `${origin.url}/${file}`, disk: dev }), (e: unknown) => {
      assert.ok(e instanceof BootyError, String(e));
      assert.equal(e.stage, 'decompress');
      assert.equal(e.code, 'IMAGE_CORRUPT');
      assert.equal(e.diskState, 'partially-written');
      // what is reported as written is the prefix of blocks fully on the disk: block 0 at most
      assert.ok((e.offset ?? -1) <= 24 * MiB, `offset ${e.offset}`);
      return true;
    }));
});

test('an xz image that decodes to gzip data: refused before any worker wrote, the disk untouched', { skip }, async () => {
  const inner = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03]), raw.subarray(10)]);
  fs.writeFileSync(path.join(dir, 'twice.raw'), inner);
  sh('xz -T2 -0 --block-size=8MiB -c twice.raw > twice.xz');
  const { r, disk: after } = await onLoop('twice', (dev) => booty(['deploy', '-q', '--image', `${origin.url}/twice.xz`, '--disk', dev]));
  assert.equal(r.status, 5, r.err);
  assert.match(r.err, /written at its offset/);
  assert.match(r.err, /decompresses to gzip-compressed data/);
  assert.match(r.err, /the disk was not written/);
  assert.ok(after.equals(garbage), 'untouched: the workers waited for the head check');
});

test('a later stream whose block does not say its sizes: the deploy starts over with liblzma\'s stream decoder (as --workers 0 does), bit-exact', { skip }, async () => {
  sh('head -c 30000000 disk.raw | xz -T2 -1 --block-size=12MiB -c > mixed.xz && tail -c +30000001 disk.raw | xz -T1 -1 -c >> mixed.xz');
  const { r, disk: got } = await onLoop('mixed', (dev) => booty(['deploy', '-q', '--image', `${origin.url}/mixed.xz`, '--disk', dev]));
  assert.equal(r.status, 0, r.err);
  assert.match(r.err, /each block written at its offset by its worker/, 'placed first');
  assert.match(r.err, /the xz file goes on, at byte \d+, with a stream whose first block does not say its sizes .*: starting over from byte 0 with the blocks decoded in order/);
  // 12 MiB blocks are over the in-order path's budget: the second attempt is liblzma's stream decoder
  assert.match(r.err, /first block does not say its sizes or is larger than 4 MiB|one stream/, r.err);
  assert.ok(got.subarray(0, SIZE).equals(raw), 'bit-exact after the restart');
  const again = await onLoop('mixed0', (dev) => booty(['deploy', '-q', '--workers', '0', '--image', `${origin.url}/mixed.xz`, '--disk', dev]));
  assert.equal(again.r.status, 0, again.r.err);
  assert.ok(again.disk.subarray(0, SIZE).equals(raw));
});

test('network faults: t0.xz resumed below the decoder, bit-exact, the bytes fetched again bounded', { skip }, async () => {
  const base = new URL(origin.url);
  const file = 't0.xz';
  const served = fs.statSync(path.join(dir, file)).size;
  for (let seed = 1; seed <= 3; seed++) {
    const proxy = await startFaultProxy({
      target: { host: base.hostname, port: Number(base.port) }, seed: seed * 7 + 1,
      faults: { probability: { cut: 0.35, reset: 0.35, stall: 0.3 }, offset: { min: 1000, max: served }, stallMs: { min: 100, max: 600 }, maxFaults: 3 },
      cutGraceMs: 200,
    });
    try {
      const { r, disk: got } = await onLoop(`fault-${seed}`, (dev) => deploy({ image: `${proxy.url}/${file}`, disk: dev, sha256: sha(fs.readFileSync(path.join(dir, file))), stallTimeoutMs: 400, retryForMs: 30_000, backoffInitialMs: 20, backoffMaxMs: 200 }));
      const st = proxy.stats();
      assert.equal(r.bytesWritten, SIZE);
      assert.equal(r.restarts, 0);
      assert.equal(r.wireBytes, served, 'every served byte hashed exactly once');
      // what a fault loses is what was in flight on the connection, never the image from byte 0
      const again = st.bytes.download - served;
      process.stderr.write(`# seed ${seed}: ${st.faultsTotal} faults, ${r.resumes} resumes, ${again} bytes fetched again (of ${served})\n`);
      assert.ok(again <= (st.faultsTotal + 1) * 2 * MiB && again < served / 2, `${again} bytes fetched again after ${st.faultsTotal} faults`);
      assert.ok(got.subarray(0, SIZE).equals(raw), `seed ${seed}: bit-exact`);
    } finally {
      await proxy.close();
    }
  }
});
