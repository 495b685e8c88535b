import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createCompressor, createDecompressor, describeDecodeError, trailingBytes } from '../../src/image/format/decompress.ts';

async function decode(format: 'gzip' | 'zstd', input: Buffer, chunk = 65536): Promise<{ out: Buffer; trailing: number }> {
  const d = createDecompressor(format)!;
  const parts: Buffer[] = [];
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) chunks.push(input.subarray(i, i + chunk));
  await pipeline(Readable.from(chunks), d, new Writable({ write(c, _e, cb) { parts.push(c as Buffer); cb(); } }));
  return { out: Buffer.concat(parts), trailing: trailingBytes(d, input.length) };
}

const a = Buffer.concat([randomBytes(300000), Buffer.alloc(2 << 20)]);
const b = Buffer.concat([Buffer.alloc(1 << 20, 7), randomBytes(5000)]);

test('concatenated gzip members and zstd frames decode fully', async () => {
  const gz = Buffer.concat([zlib.gzipSync(a), zlib.gzipSync(b), zlib.gzipSync(a)]);
  const r1 = await decode('gzip', gz, 4096);
  assert.ok(r1.out.equals(Buffer.concat([a, b, a])));
  assert.equal(r1.trailing, 0);
  const zs = Buffer.concat([zlib.zstdCompressSync(a), zlib.zstdCompressSync(b)]);
  const r2 = await decode('zstd', zs, 3000);
  assert.ok(r2.out.equals(Buffer.concat([a, b])));
  assert.equal(r2.trailing, 0);
});

test('bytes after the end of the data are counted, not silently dropped', async () => {
  const zeros = await decode('gzip', Buffer.concat([zlib.gzipSync(a), Buffer.alloc(4096)]));
  assert.equal(zeros.trailing, 4096);
  const garbage = await decode('zstd', Buffer.concat([zlib.zstdCompressSync(a), randomBytes(3 << 20)]));
  assert.ok(garbage.out.equals(a));
  assert.equal(garbage.trailing, 3 << 20);
  // non-zero garbage after a gzip member is an error from zlib itself
  await assert.rejects(decode('gzip', Buffer.concat([zlib.gzipSync(a), Buffer.from('garbage!')])),
    (e: Error & { code?: string }) => describeDecodeError('gzip', e).code === 'IMAGE_TRAILING_GARBAGE');
});

test('truncation and corruption are errors with operator wording', async () => {
  const gz = zlib.gzipSync(a);
  await assert.rejects(decode('gzip', gz.subarray(0, gz.length - 100)),
    (e: Error & { code?: string }) => describeDecodeError('gzip', e).code === 'IMAGE_TRUNCATED');
  const flipped = Buffer.from(gz);
  flipped[gz.length - 6] ^= 0x10; // CRC-32 in the trailer
  await assert.rejects(decode('gzip', flipped), (e: Error & { code?: string }) => {
    const d = describeDecodeError('gzip', e);
    return d.code === 'IMAGE_CORRUPT' && /CRC-32/.test(d.what);
  });
  const zs = await new Promise<Buffer>((resolve, reject) => {
    const c = createCompressor('zstd', { pledgedSize: a.length });
    const parts: Buffer[] = [];
    c.on('data', (x: Buffer) => parts.push(x)).on('end', () => resolve(Buffer.concat(parts))).on('error', reject);
    c.end(a);
  });
  const zflip = Buffer.from(zs);
  zflip[zs.length - 2] ^= 0x01; // the frame checksum
  await assert.rejects(decode('zstd', zflip), (e: Error & { code?: string }) => describeDecodeError('zstd', e).code === 'IMAGE_CORRUPT');
  await assert.rejects(decode('zstd', zs.subarray(0, zs.length - 50)),
    (e: Error & { code?: string }) => describeDecodeError('zstd', e).code === 'IMAGE_TRUNCATED');
});

test('raw has no decoder; compressors round-trip', async () => {
  assert.equal(createDecompressor('raw'), undefined);
  for (const f of ['gzip', 'zstd'] as const) {
    const c = createCompressor(f, { level: 1 });
    const parts: Buffer[] = [];
    await pipeline(Readable.from([a, b]), c, new Writable({ write(x, _e, cb) { parts.push(x as Buffer); cb(); } }));
    const r = await decode(f, Buffer.concat(parts));
    assert.ok(r.out.equals(Buffer.concat([a, b])), f);
  }
});
