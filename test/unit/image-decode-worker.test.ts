// The off-main-thread decoder (decode-worker.ts) against node:zlib's own streaming decoder
// (decompress.ts) on the same inputs: the same bytes out, the same input consumed (trailing bytes),
// the same errors, in both of its modes (copies, and blocks lent to a consumer that gives them
// back), however the input is chunked, and with memory bounded by its blocks. gzip runs on both of
// its engines, each asked for by name: ISA-L's igzip (libisal2: host-deps installs it) and
// node:zlib's own handle; the default measures both (gunzip-engine-choice.ts) and says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecompressor, describeDecodeError, trailingBytes } from '../../src/image/format/decompress.ts';
import { DecodeWorker, decodeWorkerSupported, dropPrestartedDecodeWorker, prestartDecodeWorker } from '../../src/image/parallel/decode-worker.ts';
import { ZLIB_MARGIN } from '../../src/image/parallel/gunzip-engine-choice.ts';
import { takeLoan } from '../../src/image/sink/block-loan.ts';
import { bufferAddress } from '../../src/sys/blockdev.ts';
import { CodecPool } from '../../src/image/parallel/codec-pool.ts';
import { ParallelCompressor } from '../../src/image/parallel/parallel-compress.ts';
import { execFileSync } from 'node:child_process';

type Format = 'gzip' | 'zstd';

function chunked(input: Buffer, chunk: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) out.push(input.subarray(i, i + chunk));
  return out;
}

interface Decoded { out: Buffer; consumed: number; blocks: number; aligned: boolean }

/** Runs the worker decoder; with `lend`, the sink gives each block back asynchronously (as the
 *  writer does once the disk has it) and checks what it was lent. */
type Engine = 'ISA-L igzip' | 'node:zlib';
const ENGINES: Engine[] = ['ISA-L igzip', 'node:zlib'];

async function viaWorker(format: Format, input: Buffer, opts: { chunk?: number; lend?: boolean; blockSize?: number; blocks?: number; engine?: Engine } = {}): Promise<Decoded> {
  const d = new DecodeWorker({ format, lend: opts.lend, blockSize: opts.blockSize ?? 64 << 10, blocks: opts.blocks ?? 3, maxInput: 256 << 10, gunzip: opts.engine ?? 'ISA-L igzip' });
  if (format === 'gzip') assert.equal((await d.engineChoice)?.engine, opts.engine ?? 'ISA-L igzip', 'libisal2 is installed by scripts/host-deps.sh');
  const parts: Buffer[] = [];
  let blocks = 0;
  let aligned = true;
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      const loan = takeLoan(c);
      const giveBack = loan?.giveBack;
      if (opts.lend === true) {
        assert.ok(giveBack, 'lent blocks are marked');
        assert.equal(loan?.aligned, true, 'lent as aligned blocks');
        blocks++;
        if (bufferAddress(c) % 4096n !== 0n) aligned = false;
      } else assert.equal(giveBack, undefined, 'copies are not lent');
      parts.push(Buffer.from(c));
      if (giveBack) setImmediate(giveBack);
      cb();
    },
  });
  await pipeline(Readable.from(chunked(input, opts.chunk ?? 65536)), d, sink);
  return { out: Buffer.concat(parts), consumed: d.bytesWritten, blocks, aligned };
}

async function viaStream(format: Format, input: Buffer): Promise<{ out: Buffer; trailing: number }> {
  const d = createDecompressor(format)!;
  const parts: Buffer[] = [];
  await pipeline(Readable.from(chunked(input, 65536)), d, new Writable({ write(c, _e, cb) { parts.push(c as Buffer); cb(); } }));
  return { out: Buffer.concat(parts), trailing: trailingBytes(d, input.length) };
}

const a = Buffer.concat([randomBytes(300_000), Buffer.alloc(2 << 20), Buffer.from('tail of a'.repeat(5000))]);
const b = Buffer.concat([Buffer.alloc(1 << 20, 7), randomBytes(5000)]);

test('this Node has what the decode worker drives', () => {
  assert.equal(decodeWorkerSupported(), true);
});

for (const [lend, engine] of [[false, 'ISA-L igzip'], [true, 'ISA-L igzip'], [false, 'node:zlib'], [true, 'node:zlib']] as const) {
  test(`bit-exact like the streaming decoder, any chunking (${lend ? 'lent blocks' : 'copies'}; gzip by ${engine})`, async () => {
    const gz = Buffer.concat([zlib.gzipSync(a), zlib.gzipSync(b), zlib.gzipSync(a, { level: 1 })]);
    const zs = Buffer.concat([zlib.zstdCompressSync(a), zlib.zstdCompressSync(b)]);
    for (const [format, input, want] of [['gzip', gz, Buffer.concat([a, b, a])], ['zstd', zs, Buffer.concat([a, b])]] as const) {
      for (const chunk of [1, 777, 65536, 3 << 20]) {
        // one-byte chunks are slow: only a prefix's worth
        const data = chunk === 1 ? (format === 'gzip' ? zlib.gzipSync(b) : zlib.zstdCompressSync(b)) : input;
        const expected = chunk === 1 ? b : want;
        const r = await viaWorker(format, data, { chunk, lend, engine });
        assert.ok(r.out.equals(expected), `${format} chunk ${chunk}: ${r.out.length} bytes vs ${expected.length}`);
        assert.equal(r.consumed, data.length, `${format} chunk ${chunk}: all input consumed`);
        if (lend) {
          assert.ok(r.aligned, 'lent blocks are 4 KiB aligned (O_DIRECT)');
          assert.equal(r.blocks, Math.ceil(expected.length / (64 << 10)), 'whole blocks, the last one shorter');
        }
      }
    }
  });
}

test('with no worker started ahead of time, the default times the gzip engines on the main thread while the worker starts, tells the worker, and decodes bit-exact', async () => {
  const data = Buffer.concat([zlib.gzipSync(a), zlib.gzipSync(b)]);
  const d = new DecodeWorker({ format: 'gzip', lend: false, blockSize: 64 << 10, blocks: 3 });
  assert.equal(d.prestarted, false);
  const c = await d.engineChoice;
  assert.ok(c !== undefined && c.rates !== undefined && c.rates.isal > 0 && c.rates.zlib > 0, JSON.stringify(c));
  assert.equal(c.engine, c.rates.zlib > c.rates.isal * ZLIB_MARGIN ? 'node:zlib' : 'ISA-L igzip');
  const parts: Buffer[] = [];
  await pipeline(Readable.from(chunked(data, 50_000)), d, new Writable({ write(x, _e, cb) { parts.push(Buffer.from(x as Buffer)); cb(); } }));
  assert.ok(Buffer.concat(parts).equals(Buffer.concat([a, b])));
  assert.equal(d.bytesWritten, data.length);
});

test('a worker started ahead of time (prestartDecodeWorker) measures the gzip engines while it waits, is taken over by the next DecodeWorker for either format and decodes bit-exact; one asking for an engine by name starts its own; a dropped one is gone', async () => {
  const cases = [['gzip', Buffer.concat([zlib.gzipSync(a), zlib.gzipSync(b)]), Buffer.concat([a, b])], ['zstd', zlib.zstdCompressSync(a), a]] as const;
  for (const [format, data, want] of cases) {
    prestartDecodeWorker();
    // as at boot: the worker has time to start (and to load ISA-L) before an image is known
    await new Promise((r) => setTimeout(r, 200));
    const d = new DecodeWorker({ format, lend: false, blockSize: 64 << 10, blocks: 3 });
    assert.equal(d.prestarted, true, `${format}: took the prestarted worker`);
    const c = await d.engineChoice;
    if (format === 'gzip') {
      // measured while it waited: both engines ran on the sample (ISA-L loaded), the faster kept
      assert.ok(c !== undefined && c.rates !== undefined && c.rates.isal > 0 && c.rates.zlib > 0, JSON.stringify(c));
      assert.equal(c.engine, c.rates.zlib > c.rates.isal * ZLIB_MARGIN ? 'node:zlib' : 'ISA-L igzip');
      assert.match(c.reason, /^measured .*igzip [\d.]+ MB\/s, node:zlib [\d.]+ MB\/s on a 1\.4 MiB sample/);
    } else assert.equal(c, undefined);
    const parts: Buffer[] = [];
    await pipeline(Readable.from(chunked(data, 50_000)), d, new Writable({ write(c, _e, cb) { parts.push(Buffer.from(c as Buffer)); cb(); } }));
    assert.ok(Buffer.concat(parts).equals(want), `${format}: bit-exact`);
    assert.equal(d.bytesWritten, data.length);
  }
  prestartDecodeWorker();
  const own = await viaWorker('gzip', zlib.gzipSync(b), { engine: 'node:zlib' });
  assert.ok(own.out.equals(b));
  dropPrestartedDecodeWorker();
  const after = new DecodeWorker({ format: 'zstd' });
  assert.equal(after.prestarted, false, 'nothing left to take after the drop');
  after.destroy();
});

test('the first block comes out before 1 MiB of input has arrived: until then input goes to the worker in 64 KiB pieces', async () => {
  // 8 MiB that compress well: the first 4 MiB block decodes from far less than 1 MiB of input
  const plain = Buffer.concat(Array.from({ length: 8 }, (_, i) => Buffer.concat([randomBytes(16 << 10), Buffer.alloc((1 << 20) - (16 << 10), i)])));
  for (const [format, data] of [['gzip', zlib.gzipSync(plain)], ['zstd', zlib.zstdCompressSync(plain)]] as const) {
    assert.ok(data.length < 1 << 20, `${format}: the whole input is under 1 MiB (${data.length} bytes)`);
    const d = new DecodeWorker({ format, lend: false, blockSize: 4 << 20, blocks: 2 });
    const first = new Promise<Buffer>((resolve) => d.once('data', (c: Buffer) => resolve(Buffer.from(c))));
    // all of the input but its last byte, and no end: with 1 MiB batches nothing would have been posted yet
    for (const c of chunked(data.subarray(0, data.length - 1), 16 << 10)) d.write(c);
    const got = await Promise.race([first, new Promise<undefined>((r) => setTimeout(() => r(undefined), 60_000).unref())]);
    assert.ok(got !== undefined, `${format}: no block came out of ${data.length - 1} bytes of input before the end`);
    assert.equal(got.length, 4 << 20);
    assert.ok(got.equals(plain.subarray(0, 4 << 20)), `${format}: the first block is the first 4 MiB`);
    // then the rest, batched as before: the whole stream still decodes bit-exact
    const rest: Buffer[] = [];
    d.on('data', (c: Buffer) => rest.push(Buffer.from(c)));
    d.end(data.subarray(data.length - 1));
    await new Promise((r, j) => { d.on('end', r); d.on('error', j); });
    assert.ok(Buffer.concat([got, ...rest]).equals(plain), `${format}: bit-exact`);
    assert.equal(d.bytesWritten, data.length);
  }
});

test('a long stream through few blocks: nothing lost while blocks wait to be given back', async () => {
  const big = Buffer.concat(Array.from({ length: 24 }, (_, i) => i % 3 === 0 ? randomBytes(1 << 20) : Buffer.alloc(1 << 20, i)));
  const r = await viaWorker('zstd', zlib.zstdCompressSync(big), { lend: true, blocks: 2, blockSize: 256 << 10 });
  assert.ok(r.out.equals(big));
  assert.equal(r.blocks, 96);
});

test('bytes after the end of the data are not consumed (trailingBytes sees them), as with the stream', async () => {
  for (const [format, input, engine] of [
    ['gzip', Buffer.concat([zlib.gzipSync(a), Buffer.alloc(4096)]), 'ISA-L igzip'],
    ['gzip', Buffer.concat([zlib.gzipSync(a), Buffer.alloc(4096)]), 'node:zlib'],
    // a member, then zeros, then another member: the zeros end the stream in both
    ['gzip', Buffer.concat([zlib.gzipSync(a), Buffer.alloc(3), zlib.gzipSync(b)]), 'ISA-L igzip'],
    ['gzip', Buffer.concat([zlib.gzipSync(a), Buffer.alloc(3), zlib.gzipSync(b)]), 'node:zlib'],
    ['zstd', Buffer.concat([zlib.zstdCompressSync(a), randomBytes(3 << 20)]), undefined],
  ] as const) {
    const want = await viaStream(format, input);
    const got = await viaWorker(format, input, { engine });
    assert.ok(got.out.equals(want.out), format);
    assert.equal(input.length - got.consumed, want.trailing, `${format}: trailing ${want.trailing}`);
    assert.ok(want.trailing > 0);
  }
});

test('corrupt and truncated input: the same error, code and operator wording as the stream', async () => {
  const gz = zlib.gzipSync(a);
  const zs = zlib.zstdCompressSync(a, { params: { [zlib.constants.ZSTD_c_checksumFlag]: 1 } });
  const flip = (x: Buffer, at: number) => { const c = Buffer.from(x); c[at] ^= 0x10; return c; };
  const cases: Array<[Format, Buffer, string]> = [
    ['gzip', flip(gz, 3), 'IMAGE_CORRUPT'],
    ['gzip', flip(gz, gz.length - 6), 'IMAGE_CORRUPT'],
    ['gzip', gz.subarray(0, gz.length >> 1), 'IMAGE_TRUNCATED'],
    ['gzip', Buffer.concat([gz, Buffer.from('garbage!')]), 'IMAGE_TRAILING_GARBAGE'],
    ['zstd', flip(zs, zs.length >> 1), 'IMAGE_CORRUPT'],
    ['zstd', flip(zs, zs.length - 1), 'IMAGE_CORRUPT'],
    ['zstd', zs.subarray(0, zs.length >> 1), 'IMAGE_TRUNCATED'],
    ['zstd', zs.subarray(0, 6), 'IMAGE_TRUNCATED'],
  ];
  for (const [format, input, code] of cases) {
    const streamErr = await viaStream(format, input).then(() => undefined, (e: Error & { code?: string }) => e);
    const workerErr = await viaWorker(format, input, { engine: 'node:zlib' }).then(() => undefined, (e: Error & { code?: string }) => e);
    assert.ok(streamErr && workerErr, `${format} ${code}: both fail`);
    assert.equal(workerErr.message, streamErr.message, `${format} ${code}`);
    assert.equal(workerErr.code, streamErr.code, `${format} ${code}`);
    assert.equal(describeDecodeError(format, workerErr).code, code, `${format}: ${workerErr.message}`);
  }
});

test('ISA-L igzip on corrupt, truncated and padded gzip: the stream\'s error classes and zlib\'s codes, never output taken as good', async () => {
  const gz = zlib.gzipSync(a);
  const two = Buffer.concat([gz, zlib.gzipSync(b)]);
  const flip = (x: Buffer, at: number, bit = 0x10) => { const c = Buffer.from(x); c[at] ^= bit; return c; };
  const cases: Array<[string, Buffer, string[]]> = [
    // a header that now claims a comment: the comment swallows the stream (zlib stops at a header
    // check, igzip runs out of input): either way the deploy fails
    ['header flag', flip(gz, 3), ['IMAGE_CORRUPT', 'IMAGE_TRUNCATED']],
    ['reserved header flag', flip(gz, 3, 0x20), ['IMAGE_CORRUPT']],
    ['deflate data', flip(gz, gz.length >> 1), ['IMAGE_CORRUPT']],
    ['CRC-32', flip(gz, gz.length - 6), ['IMAGE_CORRUPT']],
    ['ISIZE', flip(gz, gz.length - 2, 0x01), ['IMAGE_CORRUPT']],
    ['second member\'s CRC-32', flip(two, two.length - 6), ['IMAGE_CORRUPT']],
    ['truncated in the data', gz.subarray(0, gz.length >> 1), ['IMAGE_TRUNCATED']],
    ['truncated in the trailer', gz.subarray(0, gz.length - 3), ['IMAGE_TRUNCATED']],
    ['truncated in the second header', two.subarray(0, gz.length + 5), ['IMAGE_TRUNCATED']],
    ['garbage after a member', Buffer.concat([gz, Buffer.from('garbage!')]), ['IMAGE_TRAILING_GARBAGE']],
    ['empty', Buffer.alloc(0), ['IMAGE_TRUNCATED']],
  ];
  for (const [what, input, codes] of cases) {
    const streamErr = await viaStream('gzip', input).then(() => undefined, (e: Error & { code?: string }) => e);
    const err = await viaWorker('gzip', input, { engine: 'ISA-L igzip' }).then(() => undefined, (e: Error & { code?: string }) => e);
    assert.ok(err, `${what}: igzip fails`);
    assert.ok(codes.includes(describeDecodeError('gzip', err).code), `${what}: ${err.message} (${describeDecodeError('gzip', err).code})`);
    assert.ok(streamErr && codes.includes(describeDecodeError('gzip', streamErr).code), `${what}: the stream agrees`);
    if (codes.length === 1) {
      assert.equal(err.code, streamErr.code, `${what}: zlib's code`);
      if (err.code === 'Z_BUF_ERROR' || /header check|header flags|data check|length check/.test(streamErr.message)) assert.equal(err.message, streamErr.message, `${what}: zlib's words`);
    }
  }
});

test('ISA-L igzip reads what booty captures (members with extra fields, the frame index in empty members) and gzip(1) output with a file name, bit-exact', async () => {
  const pool = new CodecPool(1);
  try {
    const input = Buffer.concat([a, b]);
    const c = new ParallelCompressor({ format: 'gzip', level: 6, pool, blockSize: 1 << 20 });
    const parts: Buffer[] = [];
    await pipeline(Readable.from([input]), c, new Writable({ write(ch: Buffer, _e, cb) { parts.push(ch); cb(); } }));
    const booty = Buffer.concat(parts);
    const named = execFileSync('gzip', ['-c', '-9'], { input: b }); // FNAME-less from stdin: add one
    const withName = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0x08, 0, 0, 0, 0, 0, 3]), Buffer.from('disk.img\0'), named.subarray(10)]);
    for (const [what, data, want] of [['booty capture', booty, input], ['gzip -9 with FNAME', withName, b]] as const) {
      for (const engine of ENGINES) {
        const r = await viaWorker('gzip', data, { engine, chunk: 100_000 });
        assert.ok(r.out.equals(want), `${what} by ${engine}`);
        assert.equal(r.consumed, data.length, `${what} by ${engine}: all consumed`);
      }
    }
  } finally {
    await pool.close();
  }
});

test('destroyed midway (another stream failed): the worker ends and nothing hangs', async () => {
  const input = zlib.gzipSync(Buffer.concat(Array.from({ length: 8 }, () => randomBytes(1 << 20))));
  const d = new DecodeWorker({ format: 'gzip', lend: true, blockSize: 64 << 10, blocks: 2 });
  let seen = 0;
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      seen += c.length;
      takeLoan(c)?.giveBack(); // (giving it back moves its memory away: c reads as empty from here on)
      cb(seen > (1 << 20) ? new Error('disk gone') : null);
    },
  });
  await assert.rejects(pipeline(Readable.from(chunked(input, 65536)), d, sink), /disk gone/);
  assert.ok(d.destroyed);
});

test('an error of the decoder\'s own code is not called corrupt data: the operator is not sent to re-upload a good image', () => {
  for (const e of [new ReferenceError('__helper is not defined'), new TypeError('cannot read properties of undefined')]) {
    const d = describeDecodeError('gzip', e);
    assert.equal(d.code, 'DECODER_FAILED');
    assert.match(d.what, /booty's gzip decoder failed \((ReferenceError|TypeError): .+\), not the image/);
  }
  // zlib's own errors keep their classes
  assert.equal(describeDecodeError('gzip', Object.assign(new Error('invalid block type'), { code: 'Z_DATA_ERROR' })).code, 'IMAGE_CORRUPT');
  assert.equal(describeDecodeError('xz', Object.assign(new TypeError('odd'), { code: 'Z_DATA_ERROR' })).code, 'IMAGE_CORRUPT');
});
