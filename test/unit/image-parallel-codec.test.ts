// Parallel capture compression and parallel deploy decompression, in process, on the real worker
// pool: the output is a multi-member gzip / multi-frame zstd that node's own streaming decoders
// (what older booty agents use) read unchanged; the parallel decoder gives back the input bit for
// bit whatever the chunking; stock images, trailing bytes, truncation, corrupt frames and a
// tampered frame index behave as they do behind the streaming decoders.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import zlib from 'node:zlib';
import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CodecPool } from '../../src/image/parallel/codec-pool.ts';
import { ParallelCompressor, isAllZero } from '../../src/image/parallel/parallel-compress.ts';
import { ParallelDecompressor } from '../../src/image/parallel/parallel-decompress.ts';
import { describeDecodeError, trailingBytes } from '../../src/image/format/decompress.ts';
import { parseBootyGzipHeader, parseZstdFrameStart, ZSTD_INDEX_MAGIC } from '../../src/image/format/frame-format.ts';
import { FrameList, GZIP_INDEX_PIECE, decodeIndexPayload, encodeIndexPayload, wrapIndex } from '../../src/image/format/frame-index.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

const KiB = 1024;
const MiB = 1 << 20;
// libdeflate and, for gzip level 1, ISA-L where they load (the default: every test below runs on
// them here, host-deps installs libdeflate0 and libisal2); libdeflatePool: gzip level 1 by
// libdeflate too; zlibPool: node:zlib's own DEFLATE, as on a host without either library
const pool = new CodecPool(2);
const libdeflatePool = new CodecPool(2, { isal: null });
const zlibPool = new CodecPool(2, { libdeflate: null, isal: null });
after(() => Promise.all([pool.close(), libdeflatePool.close(), zlibPool.close()]));

/** An OS-like input: random (incompressible), text, and whole zero blocks, with an odd tail. */
function makeInput(seed: number, blocks: number, block: number): Buffer {
  const rand = seededRandom(seed);
  const parts: Buffer[] = [];
  for (let i = 0; i < blocks; i++) {
    const r = rand();
    if (r < 0.4) parts.push(Buffer.alloc(block));
    else if (r < 0.7) parts.push(randomBytes(block));
    else parts.push(Buffer.from(Array.from({ length: block }, (_, j) => 97 + ((j * 7 + i) % 23))));
  }
  parts.push(randomBytes(12345));
  return Buffer.concat(parts);
}

function chunked(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

async function through(t: Transform, chunks: Buffer[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(Readable.from(chunks), t, new Writable({ write(c: Buffer, _e, cb) { parts.push(Buffer.from(c)); cb(); } }));
  return Buffer.concat(parts);
}

async function compress(format: 'gzip' | 'zstd', input: Buffer, blockSize: number, chunk = 256 * KiB): Promise<{ out: Buffer; c: ParallelCompressor }> {
  const c = new ParallelCompressor({ format, level: format === 'gzip' ? 1 : 3, pool, blockSize, maxInflight: 3 });
  return { out: await through(c, chunked(input, chunk)), c };
}

for (const format of ['gzip', 'zstd'] as const) {
  test(`${format}: parallel frames decode with node's streaming decoder and in parallel, bit-exact`, async () => {
    const block = 256 * KiB;
    const input = makeInput(format === 'gzip' ? 1 : 2, 24, block);
    const { out, c } = await compress(format, input, block, 100_000);
    assert.equal(c.frames.count, 25, 'one frame per block and one for the tail');
    assert.equal(c.frames.totalSize, input.length);
    assert.ok(c.zeroBlocks > 3, `zero blocks skipped the pool (${c.zeroBlocks})`);
    const stock = format === 'gzip' ? zlib.gunzipSync(out) : zlib.zstdDecompressSync(out);
    assert.ok(stock.equals(input), 'a stock streaming decoder reads it unchanged');

    for (const chunk of [1000, 65536, 3 * MiB]) {
      const d = new ParallelDecompressor({ format, pool, maxInflight: 3 });
      const back = await through(d, chunked(out, chunk));
      assert.ok(back.equals(input), `bit-exact with ${chunk}-byte network chunks`);
      assert.equal(d.streamedFrom, undefined, 'every frame went through the pool');
      assert.equal(d.frames.count, 25);
      assert.equal(d.index?.frames.count, 25, 'the frame index was read and checked');
      assert.equal(trailingBytes(d, out.length), 0);
    }
  });
}

test('frames carry their sizes: gzip BY subfield, zstd content size; the index ends the file', async () => {
  const input = Buffer.concat([randomBytes(100 * KiB), Buffer.alloc(50 * KiB)]);
  const gz = (await compress('gzip', input, 64 * KiB)).out;
  const h = parseBootyGzipHeader(gz);
  assert.ok(h !== undefined && h !== 'more');
  assert.equal(h.size, 64 * KiB);
  const second = parseBootyGzipHeader(gz.subarray(h.memberLength));
  assert.ok(second !== undefined && second !== 'more' && second.size === 64 * KiB, 'the next member starts where the first says it ends');
  const zs = (await compress('zstd', input, 64 * KiB)).out;
  const start = parseZstdFrameStart(zs);
  assert.ok(start.kind === 'frame' && start.header.contentSize === 64 * KiB && start.header.hasChecksum);
  // the zstd index is a skippable frame at the very end
  const idxAt = zs.lastIndexOf(Buffer.from('BOOTYIDX')) - 8;
  assert.equal(zs.readUInt32LE(idxAt), ZSTD_INDEX_MAGIC);
  assert.equal(idxAt + 8 + zs.readUInt32LE(idxAt + 4), zs.length);
  const index = decodeIndexPayload(zs.subarray(idxAt + 8));
  assert.equal(index.frames.count, 3);
  assert.equal(index.totalSize, input.length);
  assert.equal(index.totalCompressed, idxAt);
});

test('an index larger than one gzip extra field spans several empty members that stock gunzip skips', () => {
  const frames = new FrameList();
  for (let i = 0; i < 20_000; i++) frames.add(1000 + i, 4 * MiB);
  const payload = encodeIndexPayload('gzip', 4 * MiB, frames);
  assert.ok(payload.length > 2 * GZIP_INDEX_PIECE);
  const wrapped = wrapIndex('gzip', payload);
  assert.equal(zlib.gunzipSync(wrapped).length, 0, 'decompresses to nothing');
  const pieces: Buffer[] = [];
  for (let at = 0; at < wrapped.length;) {
    const h = parseBootyGzipHeader(wrapped.subarray(at));
    assert.ok(h !== undefined && h !== 'more' && h.indexPiece !== undefined);
    pieces.push(h.indexPiece);
    at += h.memberLength;
  }
  assert.equal(pieces.length, 3);
  const back = decodeIndexPayload(Buffer.concat(pieces));
  assert.equal(back.frames.count, 20_000);
  assert.equal(back.frames.compressed(19_999), 20_999);
  assert.throws(() => decodeIndexPayload(Buffer.concat(pieces).subarray(0, 100)), /holds 100 bytes/);
});

test('isAllZero finds zero blocks and nothing else', () => {
  const b = Buffer.alloc(4 * MiB);
  assert.ok(isAllZero(b));
  b[4 * MiB - 1] = 1;
  assert.ok(!isAllZero(b));
  assert.ok(isAllZero(Buffer.alloc(0)));
});

test('stock images (pigz-style members, one big zstd frame) decode as one stream, unchanged', async () => {
  const input = makeInput(3, 8, 128 * KiB);
  const gz = Buffer.concat([zlib.gzipSync(input.subarray(0, 500_000)), zlib.gzipSync(input.subarray(500_000))]);
  const d = new ParallelDecompressor({ format: 'gzip', pool });
  assert.ok((await through(d, chunked(gz, 10_000))).equals(input));
  assert.equal(d.streamedFrom, 0);
  const zs = zlib.zstdCompressSync(input);
  const d2 = new ParallelDecompressor({ format: 'zstd', pool, maxFrame: 512 * KiB });
  assert.ok((await through(d2, chunked(zs, 10_000))).equals(input));
  assert.equal(d2.streamedFrom, 0, 'a frame larger than maxFrame streams');
});

test('booty frames followed by a foreign member: parallel first, then one stream from that boundary', async () => {
  const input = makeInput(4, 6, 64 * KiB);
  const extra = randomBytes(70_000);
  const { out } = await compress('gzip', input, 64 * KiB);
  const idx = out.lastIndexOf(Buffer.from([0x1f, 0x8b, 8, 4])); // the index member: drop it
  const mixed = Buffer.concat([out.subarray(0, idx), zlib.gzipSync(extra)]);
  const d = new ParallelDecompressor({ format: 'gzip', pool });
  assert.ok((await through(d, chunked(mixed, 30_000))).equals(Buffer.concat([input, extra])));
  assert.equal(d.streamedFrom, idx);
  assert.equal(d.frames.count, 7);
});

test('bytes after the last frame are not consumed, so deploy refuses them as trailing garbage', async () => {
  for (const format of ['gzip', 'zstd'] as const) {
    const input = makeInput(5, 4, 64 * KiB);
    const { out } = await compress(format, input, 64 * KiB);
    for (const tail of [Buffer.alloc(4096), Buffer.from('garbage!'), Buffer.from([0])]) {
      const d = new ParallelDecompressor({ format, pool });
      const back = await through(d, chunked(Buffer.concat([out, tail]), 50_000));
      assert.ok(back.equals(input));
      assert.equal(trailingBytes(d, out.length + tail.length), tail.length, `${format}: ${tail.length} trailing bytes counted`);
    }
  }
});

test('truncation, a corrupt frame and a tampered index are errors worded for deploy', async () => {
  for (const format of ['gzip', 'zstd'] as const) {
    const input = makeInput(6, 6, 64 * KiB);
    const { out, c } = await compress(format, input, 64 * KiB);
    const decode = (buf: Buffer) => through(new ParallelDecompressor({ format, pool }), chunked(buf, 20_000));
    const code = (e: Error & { code?: string }) => describeDecodeError(format, e).code;

    // cut inside the third frame
    const cut = c.frames.compressed(0) + c.frames.compressed(1) + 100;
    await assert.rejects(decode(out.subarray(0, cut)), (e: Error) => code(e) === 'IMAGE_TRUNCATED');

    // one bit flipped inside the compressed data of the largest frame (random data: every bit
    // counts; in a tiny zero frame a flip can land in a Huffman code no symbol uses, and the
    // member still decodes right, for gunzip too): CRC-32 / checksum / structure
    let big = 0;
    for (let i = 1; i < c.frames.count; i++) if (c.frames.compressed(i) > c.frames.compressed(big)) big = i;
    let at = Math.floor(c.frames.compressed(big) / 2);
    for (let i = 0; i < big; i++) at += c.frames.compressed(i);
    const flipped = Buffer.from(out);
    flipped[at] ^= 0x04;
    await assert.rejects(decode(flipped), (e: Error) => code(e) === 'IMAGE_CORRUPT' && /at byte \d+/.test(e.message));

    // a frame length in the index changed
    const tampered = Buffer.from(out);
    at = tampered.lastIndexOf(Buffer.from('BOOTYIDX')) + 40;
    tampered.writeUInt32LE(tampered.readUInt32LE(at) + 1, at);
    await assert.rejects(decode(tampered), (e: Error) => code(e) === 'IMAGE_CORRUPT' && /frame index/.test(e.message));

    // a whole frame left out: the index counts one more frame than the image holds
    const f0 = c.frames.compressed(0);
    const dropped = Buffer.concat([out.subarray(0, f0), out.subarray(f0 + c.frames.compressed(1))]);
    await assert.rejects(decode(dropped), (e: Error) => code(e) === 'IMAGE_CORRUPT' && /index lists 7 frames, the image holds 6/.test(e.message));
  }
});

test('a gzip member whose header lies about its length is refused, never decoded into the next one', async () => {
  const input = makeInput(7, 3, 64 * KiB);
  const { out } = await compress('gzip', input, 64 * KiB);
  const h = parseBootyGzipHeader(out);
  assert.ok(h !== undefined && h !== 'more');
  for (const delta of [-5, 5]) {
    const lie = Buffer.from(out);
    lie.writeUInt32LE(h.memberLength + delta, 16);
    await assert.rejects(through(new ParallelDecompressor({ format: 'gzip', pool }), [lie]),
      (e: Error) => describeDecodeError('gzip', e).code !== 'IMAGE_TRAILING_GARBAGE' && /gzip member at byte 0|unexpected end|corrupt|header check/i.test(e.message));
  }
});

test('an empty input compresses to just the index and decodes to nothing', async () => {
  for (const format of ['gzip', 'zstd'] as const) {
    const { out, c } = await compress(format, Buffer.alloc(0), 64 * KiB);
    assert.equal(c.frames.count, 0);
    assert.equal((format === 'gzip' ? zlib.gunzipSync(out) : zlib.zstdDecompressSync(out)).length, 0);
    const d = new ParallelDecompressor({ format, pool });
    assert.equal((await through(d, [out])).length, 0);
    assert.equal(d.index?.frames.count, 0);
  }
});

test('deploy decodes in parallel by default only from 4 cores up, leaving one core to the main thread', async () => {
  const { defaultDeployWorkers } = await import('../../src/image/parallel/codec-pool.ts');
  assert.equal(defaultDeployWorkers(1), 0);
  assert.equal(defaultDeployWorkers(2), 0);
  assert.equal(defaultDeployWorkers(4), 3);
  assert.equal(defaultDeployWorkers(64), 63);
});

test('the pool reuses one compressor per worker: every frame is byte-identical to the one-shot call', async () => {
  const pool = zlibPool;
  const rand = seededRandom(11);
  const text = Buffer.from('pool frames '.repeat(40_000));
  // same size twice (reset path), another size, another level, then back (rebuild path)
  const blocks = [1 << 20, 1 << 20, 300_000, 1 << 20, 5].map((n, i) => {
    const b = Buffer.alloc(n);
    for (let k = 0; k < n; k++) b[k] = k % 7 === 0 ? Math.floor(rand() * 256) : text[(k + i) % text.length];
    return b;
  });
  const C = zlib.constants;
  for (const [i, block] of blocks.entries()) {
    const level = i === 3 ? 1 : 6;
    const d = await pool.run({ op: 'deflate', data: Buffer.from(block), level });
    assert.ok(d.out.equals(zlib.deflateRawSync(block, { level })), `deflate frame ${i}`);
    assert.equal(d.crc, zlib.crc32(block));
    const zlevel = i === 3 ? 1 : 3;
    const z = await pool.run({ op: 'zstd', data: Buffer.from(block), level: zlevel });
    const want = zlib.zstdCompressSync(block, { pledgedSrcSize: block.length,
      params: { [C.ZSTD_c_compressionLevel]: zlevel, [C.ZSTD_c_checksumFlag]: 1, [C.ZSTD_c_contentSizeFlag]: 1 } });
    assert.ok(z.out.equals(want), `zstd frame ${i}`);
  }
  // incompressible input larger than the first output guess still comes out whole
  const noise = randomBytes(3 << 20);
  const r = await pool.run({ op: 'zstd', data: Buffer.from(noise), level: 3 });
  assert.ok(zlib.zstdDecompressSync(r.out).equals(noise));
  const g = await pool.run({ op: 'deflate', data: Buffer.from(noise), level: 9 });
  assert.ok(zlib.inflateRawSync(g.out).equals(noise));
});

test('the workers use libdeflate here; its frames are plain DEFLATE and it reads zlib\'s, with zlib\'s error codes', async () => {
  assert.equal(pool.deflate, 'libdeflate', 'libdeflate0 is installed by scripts/host-deps.sh');
  assert.equal(zlibPool.deflate, 'node:zlib');
  const input = makeInput(21, 12, 256 * KiB);
  for (const level of [1, 6, 9]) {
    const d = await libdeflatePool.run({ op: 'deflate', data: Buffer.from(input), level });
    assert.ok(zlib.inflateRawSync(d.out).equals(input), `level ${level}: zlib inflates libdeflate's DEFLATE`);
    assert.equal(d.crc, zlib.crc32(input));
    const z = await zlibPool.run({ op: 'deflate', data: Buffer.from(input), level });
    // libdeflate's output is its own (and here smaller), not zlib's bytes
    assert.ok(d.out.length <= z.out.length * 1.01, `level ${level}: ${d.out.length} vs zlib ${z.out.length}`);
    const back = await pool.run({ op: 'inflate', data: Buffer.from(z.out), size: input.length });
    assert.ok(back.out.equals(input));
    assert.equal(back.crc, zlib.crc32(input));
    assert.equal(back.consumed, z.out.length);
  }
  const z = zlib.deflateRawSync(input, { level: 6 });
  // data after the final block: not consumed, as zlib reports
  const r = await pool.run({ op: 'inflate', data: Buffer.concat([z, Buffer.from('tail')]), size: input.length });
  assert.equal(r.consumed, z.length);
  // more output than announced: ERR_BUFFER_TOO_LARGE (no more memory taken); less: a short buffer
  await assert.rejects(pool.run({ op: 'inflate', data: Buffer.from(z), size: input.length - 1 }), { code: 'ERR_BUFFER_TOO_LARGE' });
  assert.equal((await pool.run({ op: 'inflate', data: Buffer.from(z), size: input.length + 10 })).out.length, input.length);
  // cut short or damaged: an error, never output taken as good
  await assert.rejects(pool.run({ op: 'inflate', data: z.subarray(0, z.length >> 1), size: input.length }), { code: 'Z_DATA_ERROR' });
  const bad = Buffer.from(z);
  bad[0] ^= 0x06; // block type 3: invalid
  await assert.rejects(pool.run({ op: 'inflate', data: bad, size: input.length }), { code: 'Z_DATA_ERROR' });
});

test('gzip level 1 is ISA-L\'s igzip here: plain DEFLATE that zlib inflates, whatever the input; other levels stay with libdeflate', async () => {
  assert.equal(pool.isal, true, 'libisal2 is installed by scripts/host-deps.sh');
  assert.equal(pool.deflateAt(1), 'ISA-L igzip');
  assert.equal(pool.deflateAt(6), 'libdeflate');
  assert.equal(libdeflatePool.deflateAt(1), 'libdeflate; ISA-L not used');
  assert.equal(zlibPool.deflateAt(1), 'node:zlib; ISA-L not used');
  const rand = seededRandom(33);
  const text = Buffer.from(Array.from({ length: 3 * MiB + 777 }, (_, j) => 97 + ((j * 13 + (j >> 9)) % 26)));
  const inputs: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['one byte', Buffer.from([7])],
    ['4 MiB of zeros', Buffer.alloc(4 * MiB)],
    // incompressible: igzip falls back to stored blocks, within the output it was given
    ['4 MiB of noise', randomBytes(4 * MiB)],
    ['text', text],
    ['OS-like mix', makeInput(44, 16, 256 * KiB)],
    ['odd size', Buffer.from(Array.from({ length: 100_003 }, () => Math.floor(rand() * 4)))],
  ];
  for (const [what, input] of inputs) {
    const d = await pool.run({ op: 'deflate', data: Buffer.from(input), level: 1 });
    assert.ok(zlib.inflateRawSync(d.out).equals(input), `${what}: zlib inflates igzip's DEFLATE`);
    assert.equal(d.crc, zlib.crc32(input), what);
    const back = await pool.run({ op: 'inflate', data: Buffer.from(d.out), size: input.length });
    assert.ok(back.out.equals(input), `${what}: libdeflate inflates it too`);
    if (input.length > 4 * KiB) {
      const l = await libdeflatePool.run({ op: 'deflate', data: Buffer.from(input), level: 1 });
      assert.ok(!l.out.equals(d.out), `${what}: igzip's output, not libdeflate's`);
    }
  }
  // the frames of a whole capture at level 1 read back through the streaming decoder
  const input = makeInput(45, 40, 128 * KiB);
  const c = new ParallelCompressor({ format: 'gzip', level: 1, pool, blockSize: MiB });
  const chunks: Buffer[] = [];
  await pipeline(Readable.from([input]), c, new Writable({ write(ch: Buffer, _e, cb) { chunks.push(ch); cb(); } }));
  assert.ok(zlib.gunzipSync(Buffer.concat(chunks)).equals(input));
});

test('a pool closed at any moment (workers still loading libdeflate, or mid-task) ends cleanly, never aborting the process', () => {
  // terminate() on a thread inside koffi's loader or a native call aborted the whole process
  // ("FATAL ERROR: Error::ThrowAsJavaScriptException napi_throw"); the workers now exit between
  // tasks when asked (worker-exit.ts). Run in a child: an abort must fail this test, not the runner.
  const script = `
    import { CodecPool } from ${JSON.stringify(new URL('../../src/image/parallel/codec-pool.ts', import.meta.url).pathname)};
    for (let i = 0; i < 80; i++) {
      const p = new CodecPool(2);
      if (i % 2 === 1) void p.run({ op: 'deflate', data: Buffer.alloc(1 << 20, i), level: 1 }).catch(() => {});
      await new Promise((r) => setTimeout(r, i % 40));
      await p.close();
    }
    console.log('closed cleanly');`;
  const r = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `${r.stderr.slice(0, 2000)}`);
  assert.match(r.stdout, /closed cleanly/);
});
