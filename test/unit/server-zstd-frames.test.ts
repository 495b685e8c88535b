// The server's X-Image-Size for zstd: the sum over every frame (multi-frame files from a parallel
// compressor or `cat a.zst b.zst`, skippable frames), nothing when a frame lacks its size or the
// file is broken. Real `zstd` output where the tool exists, node's zstd otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { zstdPathContentSize, zstdTotalContentSize } from '../../src/server/zstd-frames.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

function hasZstdTool(): boolean {
  try { execFileSync('zstd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

const zstdCli = (input: Buffer, args: string[] = []) => execFileSync('zstd', ['-q', '-c', ...args], { input, maxBuffer: 64 << 20 });
const zstdNode = (input: Buffer) => zlib.zstdCompressSync(input, { params: { [zlib.constants.ZSTD_c_checksumFlag]: 1 } });
const fromBuffer = (b: Buffer) => zstdTotalContentSize(async (pos, len) => b.subarray(pos, pos + len), b.length);

/** Mixed content: random (raw blocks), text (compressed blocks), zeros (RLE blocks). */
function content(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  randomBytes(Math.floor(n / 3)).copy(b, 0);
  b.write(`booty ${seed} `.repeat(Math.ceil(n / 9)).slice(0, Math.floor(n / 3)), Math.floor(n / 3), 'latin1');
  return b;
}

test('one frame: its Frame_Content_Size', async () => {
  for (const n of [0, 1, 255, 256, 65791, 65792, 3 * 1024 * 1024 + 7]) {
    const z = zstdNode(content(n, n));
    assert.equal(await fromBuffer(z), n, `n=${n}`);
  }
});

test('two concatenated zstd outputs (multi-frame): the sum of both, not the first frame', { skip: skipUnlessPresent(hasZstdTool(), 'zstd tool missing') }, async () => {
  const a = content(1_500_000, 1);
  const b = content(2_700_001, 2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-zstd-frames-'));
  try {
    // from files (not a pipe), so each frame records its content size as `zstd` normally does
    fs.writeFileSync(path.join(dir, 'a'), a);
    fs.writeFileSync(path.join(dir, 'b'), b);
    execFileSync('zstd', ['-q', path.join(dir, 'a')]);
    execFileSync('zstd', ['-q', '-19', path.join(dir, 'b')]);
    const file = path.join(dir, 'two.zst');
    fs.writeFileSync(file, Buffer.concat([fs.readFileSync(path.join(dir, 'a.zst')), fs.readFileSync(path.join(dir, 'b.zst'))]));
    // zstd itself decodes the concatenation to a + b
    assert.ok(execFileSync('zstd', ['-q', '-d', '-c', file], { maxBuffer: 64 << 20 }).equals(Buffer.concat([a, b])));
    assert.equal(await zstdPathContentSize(file), a.length + b.length);
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

test('many frames with skippable frames between them', async () => {
  const parts = [content(100_000, 3), content(0, 4), content(777_777, 5), content(1, 6)];
  const skippable = Buffer.alloc(8 + 13);
  skippable.writeUInt32LE(0x184d2a5a, 0);
  skippable.writeUInt32LE(13, 4);
  const file = Buffer.concat([skippable, ...parts.flatMap((p) => [zstdNode(p), skippable])]);
  assert.equal(await fromBuffer(file), parts.reduce((n, p) => n + p.length, 0));
});

test('a frame without Frame_Content_Size (streamed): no size at all', { skip: skipUnlessPresent(hasZstdTool(), 'zstd tool missing') }, async () => {
  const a = content(200_000, 7);
  // zstd writes no content size when reading a pipe with --no-content-size
  const unsized = zstdCli(a, ['--no-content-size']);
  assert.equal(await fromBuffer(unsized), undefined);
  assert.equal(await fromBuffer(Buffer.concat([zstdNode(a), unsized])), undefined, 'one unsized frame makes the total unknown');
});

test('truncated, garbage-tailed or non-zstd files: no size', async () => {
  const z = Buffer.concat([zstdNode(content(300_000, 8)), zstdNode(content(300_000, 9))]);
  assert.equal(await fromBuffer(z), 600_000);
  for (const cut of [3, 10, Math.floor(z.length / 2) + 5, z.length - 1]) assert.equal(await fromBuffer(z.subarray(0, cut)), undefined, `cut at ${cut}`);
  assert.equal(await fromBuffer(Buffer.concat([z, Buffer.from('garbage')])), undefined);
  assert.equal(await fromBuffer(zlib.gzipSync(Buffer.from('x'))), undefined);
  assert.equal(await fromBuffer(Buffer.alloc(0)), undefined);
});

test('a frame declaring more than 2^53 bytes: no size (never a rounded one)', async () => {
  // window byte, 8-byte Frame_Content_Size 2^53 + 1, then one empty raw last block
  const frame = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00, 1, 0, 0, 0, 0, 0, 0x20, 0, 0x01, 0x00, 0x00]);
  const readAt = async (pos: number, len: number) => frame.subarray(pos, pos + len);
  assert.equal(await zstdTotalContentSize(readAt, frame.length), undefined);
  // the same frame declaring 1 byte is summed: only the size made the difference
  const small = Buffer.from(frame);
  small[12] = 0;
  assert.equal(await zstdTotalContentSize(async (pos, len) => small.subarray(pos, pos + len), small.length), 1);
});
