// Pins the shape of node:zlib's private API that src/sys/zlib-handle.ts drives (and through it
// deploy's decode and segment workers, capture's codec workers and the gzip index builder): a
// Node upgrade that renames or changes any of it fails here, by name, instead of sending deploy
// and capture down their slower fallbacks unnoticed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { syncZlib, syncZlibSupported, type SyncZlibStream } from '../../src/sys/zlib-handle.ts';

const C = zlib.constants;

/** The raw private fields, as zlib-handle.ts reads them. */
function internals(s: SyncZlibStream): { _handle: { writeSync: unknown; onerror: unknown }; _writeState: unknown; _defaultFlushFlag: unknown; _finishFlushFlag: unknown } {
  return s as never;
}

const streams: Array<[string, () => SyncZlibStream, number, number]> = [
  ['createGunzip', () => zlib.createGunzip(), C.Z_NO_FLUSH, C.Z_FINISH],
  ['createInflateRaw', () => zlib.createInflateRaw(), C.Z_NO_FLUSH, C.Z_FINISH],
  ['createDeflateRaw', () => zlib.createDeflateRaw({ level: 1 }), C.Z_NO_FLUSH, C.Z_FINISH],
  ['createZstdCompress', () => zlib.createZstdCompress(), C.ZSTD_e_continue, C.ZSTD_e_end],
  ['createZstdDecompress', () => zlib.createZstdDecompress(), C.ZSTD_e_continue, C.ZSTD_e_end],
];

for (const [name, make, flush, finish] of streams) {
  test(`node:zlib ${name}(): _handle.writeSync, _handle.onerror, _writeState [2], _defaultFlushFlag, _finishFlushFlag`, () => {
    const s = make();
    const i = internals(s);
    assert.equal(typeof i._handle.writeSync, 'function', '_handle.writeSync');
    assert.ok('onerror' in i._handle, '_handle.onerror (replaced by zlib-handle.ts)');
    assert.ok(i._writeState instanceof Uint32Array, '_writeState is a Uint32Array');
    assert.equal((i._writeState as Uint32Array).length, 2, '_writeState holds [avail_out, avail_in]');
    assert.equal(i._defaultFlushFlag, flush, '_defaultFlushFlag');
    assert.equal(i._finishFlushFlag, finish, '_finishFlushFlag');
    const w = syncZlib(s);
    assert.ok(w !== undefined);
    assert.equal(w.flushFlag, flush);
    assert.equal(w.finishFlag, finish);
    w.close();
  });
}

test('syncZlibSupported() on the pinned runtime', () => {
  assert.equal(syncZlibSupported(), true);
});

test('writeSync: output lands at outOff, _writeState says [output space left, input left], in pieces', () => {
  const data = randomBytes(200_000);
  const gz = zlib.gzipSync(data);
  const raw = zlib.createGunzip();
  const handle = internals(raw)._handle as { writeSync: (...a: unknown[]) => void };
  const state = internals(raw)._writeState as Uint32Array;
  const out = Buffer.alloc(300_000, 0xee);
  // first step: 1000 bytes of input at offset 10 of a bigger buffer, output at offset 7, room for 50
  const input = Buffer.concat([Buffer.alloc(10, 0xaa), gz]);
  handle.writeSync(C.Z_NO_FLUSH, input, 10, 1000, out, 7, 50);
  assert.equal(state[0], 0, 'all 50 bytes of room filled');
  assert.ok(state[1] > 0 && state[1] < 1000, `some input left (${state[1]})`);
  assert.equal(out[6], 0xee, 'nothing before outOff');
  assert.deepEqual(out.subarray(7, 57), data.subarray(0, 50));
  assert.equal(out[57], 0xee, 'nothing after outOff + outLen');
  // the rest, with room to spare: output space is left, all input taken
  let inOff = 10 + 1000 - state[1];
  let produced = 50;
  for (;;) {
    const avail = input.length - inOff;
    handle.writeSync(C.Z_FINISH, input, inOff, avail, out, 7 + produced, out.length - 7 - produced);
    produced += out.length - 7 - produced - state[0];
    inOff += avail - state[1];
    if (state[0] > 0) break;
  }
  assert.equal(inOff, input.length, 'all input taken');
  assert.equal(produced, data.length);
  assert.deepEqual(out.subarray(7, 7 + produced), data);
  raw.close();
});

test('onerror(message, errno, code) is called synchronously from writeSync, with zlib\'s words', () => {
  const raw = zlib.createGunzip();
  const i = internals(raw);
  const seen: unknown[][] = [];
  i._handle.onerror = (...a: unknown[]) => { seen.push(a); };
  (i._handle.writeSync as (...a: unknown[]) => void)(C.Z_NO_FLUSH, Buffer.from('not gzip at all'), 0, 15, Buffer.alloc(64), 0, 64);
  assert.deepEqual(seen, [['incorrect header check', C.Z_DATA_ERROR, 'Z_DATA_ERROR']]);
  raw.close();

  const w = syncZlib(zlib.createZstdDecompress())!;
  assert.equal(w.write(w.flushFlag, Buffer.from('definitely not zstd'), 0, 19, Buffer.alloc(64), 0, 64), false);
  assert.equal(typeof w.error?.message, 'string');
  assert.match(w.error!.code, /^ZSTD_error_/);
  w.close();
});

test('Z_BLOCK stops at deflate block ends (the gzip index builder finds its points this way)', () => {
  // two sync-flushed pieces: the first step under Z_BLOCK must stop at the end of the first
  // piece's block even with room and input to spare
  const a = randomBytes(5000);
  const first = zlib.deflateRawSync(a, { finishFlush: C.Z_SYNC_FLUSH });
  const whole = Buffer.concat([first, zlib.deflateRawSync(Buffer.from('tail'))]);
  const w = syncZlib(zlib.createInflateRaw())!;
  const out = Buffer.alloc(20_000);
  let off = 0;
  let produced = 0;
  for (let i = 0; i < 10 && produced < a.length; i++) {
    assert.ok(w.write(C.Z_BLOCK, whole, off, whole.length - off, out, produced, out.length - produced));
    produced = out.length - w.outLeft;
    off = whole.length - w.inLeft;
  }
  assert.equal(produced, a.length, 'stopped with the first piece decoded, not the tail');
  assert.ok(off <= first.length, 'and no further than the first piece\'s bytes');
  w.close();
});

test('reset() keeps a compressor\'s settings: frames after a reset are byte-identical to the one-shot calls', () => {
  const data = Buffer.concat([randomBytes(50_000), Buffer.alloc(50_000)]);
  for (const [make, oneShot] of [
    [() => zlib.createDeflateRaw({ level: 6 }), () => zlib.deflateRawSync(data, { level: 6 })],
    [() => zlib.createZstdCompress({ pledgedSrcSize: data.length, params: { [C.ZSTD_c_compressionLevel]: 3, [C.ZSTD_c_checksumFlag]: 1, [C.ZSTD_c_contentSizeFlag]: 1 } }),
      () => zlib.zstdCompressSync(data, { pledgedSrcSize: data.length, params: { [C.ZSTD_c_compressionLevel]: 3, [C.ZSTD_c_checksumFlag]: 1, [C.ZSTD_c_contentSizeFlag]: 1 } })],
  ] as Array<[() => SyncZlibStream, () => Buffer]>) {
    const w = syncZlib(make())!;
    const expected = oneShot();
    for (let round = 0; round < 3; round++) {
      if (round > 0) w.reset();
      const out = Buffer.alloc(data.length * 2);
      assert.ok(w.write(w.finishFlag, data, 0, data.length, out, 0, out.length));
      assert.equal(w.inLeft, 0);
      assert.deepEqual(out.subarray(0, out.length - w.outLeft), expected, `round ${round}`);
    }
    w.close();
  }
});

test('reset() clears an error: the decoder decodes a new stream', () => {
  const w = syncZlib(zlib.createInflateRaw())!;
  const out = Buffer.alloc(1000);
  assert.equal(w.write(w.flushFlag, Buffer.from([0xff, 0xff, 0xff]), 0, 3, out, 0, out.length), false);
  assert.equal(w.error?.code, 'Z_DATA_ERROR');
  w.reset();
  assert.equal(w.error, null);
  const d = zlib.deflateRawSync(Buffer.from('hello again'));
  assert.ok(w.write(w.finishFlag, d, 0, d.length, out, 0, out.length));
  assert.equal(out.subarray(0, out.length - w.outLeft).toString(), 'hello again');
  w.close();
});
