// The block decoders' pieces on their own: the bzip2 magic scanner against a bit-by-bit scan, a
// block cut out and re-aligned by standaloneBlock() decoded by the real bzip2, the bzip2 block
// decoder given magics that are not block boundaries (what a crafted file has inside compressed
// data) still bit-exact with bzip2 -d, and the xz block decoder fed its input a few bytes at a
// time (every framing parser resumes mid-structure) bit-exact with xz -d.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BLOCK_MAGIC, EOS_MAGIC, MagicScanner, readBits, standaloneBlock, type Magic } from '../../src/image/format/bzip2-bits.ts';
import { BlockDecodePool } from '../../src/image/parallel/block-decode-pool.ts';
import { Bzip2BlockDecompressor } from '../../src/image/parallel/bzip2-block-decompress.ts';
import { XzBlockDecompressor } from '../../src/image/parallel/xz-block-decompress.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'booty-blocks-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const rand = seededRandom(61);

/** Runs `cmd` on `input` (a file), returns its output file. */
function tool(cmd: string, input: Buffer): Buffer {
  writeFileSync(path.join(dir, 'in'), input);
  execFileSync('bash', ['-c', `${cmd} < in > out`], { cwd: dir, stdio: 'ignore' });
  return readFileSync(path.join(dir, 'out'));
}

// text with some noise: bzip2 -1 makes several 100 kB blocks of it
const image = Buffer.alloc(1_500_000);
for (let i = 0; i < image.length; i++) image[i] = rand() < 0.7 ? 0x61 + Math.floor(rand() * 6) : Math.floor(rand() * 256);
image.fill(0, 600_000, 900_000);

function naiveScan(b: Buffer): Magic[] {
  const out: Magic[] = [];
  for (let bit = 0; bit + 48 <= b.length * 8; bit++) {
    const v = readBits(b, bit, 16) * 2 ** 32 + readBits(b, bit + 16, 32);
    if (v === BLOCK_MAGIC) out.push({ bit, eos: false });
    if (v === EOS_MAGIC) out.push({ bit, eos: true });
  }
  return out;
}

function writeMagic(b: Buffer, bit: number, magic: number): void {
  for (let i = 0; i < 48; i++) {
    const one = Math.floor(magic / 2 ** (47 - i)) % 2;
    const at = bit + i;
    if (one) b[at >>> 3] |= 0x80 >> (at & 7); else b[at >>> 3] &= ~(0x80 >> (at & 7));
  }
}

test('the magic scanner finds both magics at every bit offset, across chunk boundaries, as a bit-by-bit scan does', () => {
  const b = Buffer.alloc(20_000);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256);
  for (let k = 0; k < 40; k++) writeMagic(b, 8 + k * 3900 + (k % 8) + Math.floor(rand() * 64), k % 3 === 0 ? EOS_MAGIC : BLOCK_MAGIC);
  const want = naiveScan(b);
  assert.ok(want.length >= 40);
  const s = new MagicScanner();
  const got: Magic[] = [];
  for (let at = 0; at < b.length;) {
    const n = 1 + Math.floor(rand() * 50);
    got.push(...s.push(b.subarray(at, at + n)));
    at += n;
  }
  assert.deepEqual(got, want);
});

test('a block cut between two magics and re-aligned by standaloneBlock() is a stream bzip2 -d decodes', () => {
  const bz = tool('bzip2 -1', image);
  const magics = naiveScan(bz);
  assert.ok(magics.filter((m) => !m.eos).length >= 10, 'several blocks');
  const parts: Buffer[] = [];
  for (let i = 0; i + 1 < magics.length; i++) {
    const { bit } = magics[i];
    const end = magics[i + 1].bit;
    const crc = readBits(bz, bit + 48, 32);
    // the bytes holding the block, from its first byte: bit offsets 0-7 within it
    const own = standaloneBlock(bz.subarray(bit >>> 3, Math.ceil(end / 8)), bit & 7, end - bit, 1, crc);
    parts.push(tool('bzip2 -dc', own));
  }
  assert.ok(Buffer.concat(parts).equals(image), 'the blocks, each decoded by bzip2 on its own, make the image');
});

/** A scanner that also reports magics that are not there: in the middle of every real block, as a
 *  file crafted to hold the magic inside compressed data would. */
class FalseMagics extends MagicScanner {
  reported = 0;
  private pending: Magic[] = [];
  override push(chunk: Buffer): Magic[] {
    const out = super.push(chunk);
    for (const m of out) {
      if (!m.eos) this.pending.push({ bit: m.bit + 2000 + (this.pending.length % 7), eos: this.pending.length % 2 === 1 });
    }
    // reported once its bytes are in, as a real one would be
    const due = this.pending.filter((m) => m.bit + 56 <= this.bytes * 8);
    this.pending = this.pending.filter((m) => m.bit + 56 > this.bytes * 8);
    this.reported += due.length;
    return [...out, ...due].sort((a, b) => a.bit - b.bit);
  }
}

async function decode(d: XzBlockDecompressor | Bzip2BlockDecompressor, data: Buffer, piece: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  const pieces = Array.from({ length: Math.ceil(data.length / piece) }, (_, i) => data.subarray(i * piece, (i + 1) * piece));
  await pipeline(Readable.from(pieces), d, new Writable({ write(c: Buffer, _e, cb) { parts.push(Buffer.from(c)); cb(); } }));
  return Buffer.concat(parts);
}

test('bzip2: magics inside compressed data (false boundaries) are cut again; output bit-exact with bzip2 -d', async () => {
  const pool = new BlockDecodePool(2);
  try {
    for (const cmd of ['bzip2 -1', 'pbzip2 -1 -p2 -b1']) {
      const bz = tool(cmd, image);
      const scanner = new FalseMagics();
      const d = new Bzip2BlockDecompressor({ pool, scanner });
      const out = await decode(d, bz, 4096);
      assert.ok(out.equals(tool('bzip2 -dc', bz)), `${cmd}: bit-exact`);
      assert.ok(scanner.reported >= 10 && d.falseMagics === scanner.reported, `${cmd}: ${d.falseMagics} of ${scanner.reported} false magics cut again`);
      assert.equal(d.bytesWritten, bz.length);
    }
  } finally {
    await pool.close();
  }
});

test('xz: a multi-block stream fed 7 bytes at a time decodes bit-exact with xz -d (every framing parser resumes)', async () => {
  const pool = new BlockDecodePool(2);
  try {
    const xz = Buffer.concat([tool('xz -T2 --block-size=200KiB --check=crc64', image), Buffer.alloc(8), tool('xz -T2 --block-size=300KiB --check=sha256', image)]);
    const d = new XzBlockDecompressor({ pool });
    const out = await decode(d, xz, 7);
    assert.ok(out.equals(tool('xz -dc', xz)), 'bit-exact');
    assert.equal(d.streams, 2);
    assert.ok(d.blocks >= 10, `${d.blocks} blocks`);
    assert.equal(d.bytesWritten, xz.length);
  } finally {
    await pool.close();
  }
});

test('block workers by default: none on 1 core (the single stream), one per core from 2 up', async () => {
  const { defaultBlockWorkers } = await import('../../src/image/parallel/block-decode-pool.ts');
  assert.equal(defaultBlockWorkers(1), 0);
  assert.equal(defaultBlockWorkers(2), 2);
  assert.equal(defaultBlockWorkers(8), 8);
  assert.equal(defaultBlockWorkers(64), 16);
});

test('standaloneBlock() re-aligns the same bits as a bit-by-bit copy, at every offset and length, up to the end of its input', () => {
  const rand = seededRandom(77);
  for (let round = 0; round < 400; round++) {
    const src = Buffer.alloc(1 + Math.floor(rand() * 64));
    for (let i = 0; i < src.length; i++) src[i] = Math.floor(rand() * 256);
    const shift = Math.floor(rand() * 8);
    // up to every bit there is from the shift on (the last byte's low bits read as zeros past the end)
    const bits = 1 + Math.floor(rand() * (src.length * 8 - shift));
    const got = standaloneBlock(src, shift, bits, 9, 0x12345678);
    for (let b = 0; b < bits; b++) {
      assert.equal(readBits(got, 32 + b, 1), readBits(src, shift + b, 1), `round ${round}: bit ${b} of ${bits} (shift ${shift}, ${src.length} bytes)`);
    }
    assert.equal(readBits(got, 32 + bits + 48, 32), 0x12345678);
  }
});
