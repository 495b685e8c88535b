// The block decoders' parts are lent to the writer (block-loan.ts) and freed as soon as it copied
// them: a real bzip2 -1 file decoded on two block workers into an ImageWriter on a file, every
// part's memory detached by the time the deploy ends, the file bit-exact with bzip2 -d's output.
// And a lent buffer of no particular address that is exactly one block long is still copied into
// an aligned block, never written as it is (only aligned loans may be: O_DIRECT needs it).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlockDecodePool } from '../../src/image/parallel/block-decode-pool.ts';
import { Bzip2BlockDecompressor } from '../../src/image/parallel/bzip2-block-decompress.ts';
import { lendBlock } from '../../src/image/sink/block-loan.ts';
import { WriteTarget } from '../../src/image/sink/target.ts';
import { ImageWriter } from '../../src/image/sink/writer.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

const MiB = 1 << 20;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-part-release-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function chunked(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

test('bzip2 blocks: each decoded part is freed once the writer copied it; the disk is bit-exact', async () => {
  const rand = seededRandom(73);
  const image = Buffer.alloc(3 * MiB);
  for (let i = 0; i < image.length; i++) image[i] = rand() < 0.6 ? 0x61 + Math.floor(rand() * 8) : Math.floor(rand() * 256);
  image.fill(0, MiB, MiB + 300_000); // a zero run: zero parts are counts, never lent
  fs.writeFileSync(path.join(dir, 'image'), image);
  execFileSync('bash', ['-c', 'bzip2 -1 -c image > image.bz2'], { cwd: dir });
  const compressed = fs.readFileSync(path.join(dir, 'image.bz2'));
  const file = path.join(dir, 'disk');
  fs.writeFileSync(file, Buffer.alloc(4 * MiB, 0x5a));

  const pool = new BlockDecodePool(2);
  try {
    const d = new Bzip2BlockDecompressor({ pool });
    const pushed: Buffer[] = [];
    const push = d.push.bind(d);
    d.push = (c: unknown) => {
      if (Buffer.isBuffer(c)) pushed.push(c);
      return push(c);
    };
    const w = new ImageWriter({ target: WriteTarget.open(file), blockSize: MiB, poolSize: 2, limit: 4 * MiB, holdBack: 0 });
    await pipeline(Readable.from(chunked(compressed, 65536)), d, w);
    await w.commit();
    await w.close();
    assert.ok(d.blocks >= 3, `several blocks (${d.blocks})`);
    const data = pushed.filter((c) => !(c.buffer as ArrayBuffer).detached);
    // what is still attached is the decoder's shared zero buffer, pushed for zero counts
    assert.ok(data.every((c) => c.every((b) => b === 0)), 'every part that carried data was freed after the copy');
    assert.ok(pushed.length - data.length >= 3, `data parts were freed (${pushed.length - data.length} of ${pushed.length})`);
    assert.ok(fs.readFileSync(file).subarray(0, image.length).equals(image), 'bit-exact with the source bzip2 compressed');
  } finally {
    await pool.close();
  }
});

test('a lent buffer that is not an aligned block is copied, even when exactly one block long', async () => {
  const file = path.join(dir, 'disk2');
  fs.writeFileSync(file, Buffer.alloc(2 * MiB));
  const target = WriteTarget.open(file);
  const written: Uint8Array[] = [];
  const writeAt = target.writeAt.bind(target);
  target.writeAt = (buf: Uint8Array, pos: number) => { written.push(buf); return writeAt(buf, pos); };
  const part = Buffer.alloc(MiB, 0x33);
  const ab = part.buffer;
  let givenBack = 0;
  const w = new ImageWriter({ target, blockSize: MiB, poolSize: 2, limit: 2 * MiB, holdBack: 0 });
  await pipeline(Readable.from([lendBlock(part, () => { givenBack++; }, false)]), w);
  await w.commit();
  await w.close();
  assert.equal(givenBack, 1, 'given back once');
  assert.ok(written.length > 0 && written.every((b) => b.buffer !== ab), 'written from the writer\'s own block, not from the lent buffer');
  assert.ok(fs.readFileSync(file).subarray(0, MiB).equals(Buffer.alloc(MiB, 0x33)));
});
