// The gzip access-point index (gzip-index.ts) and the parallel inflate it enables
// (segment-inflate.ts), on images compressed by real pigz and gzip: the index of a pigz image
// decodes, segment by segment on worker threads, to exactly the original bytes, whatever the
// chunking and the worker count; images without usable points are refused with a reason; and
// every way the image or the index can be wrong is caught (never silently wrong output).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { crc32Combine } from '../../src/image/format/crc32-combine.ts';
import {
  FLAG_ZEROS, GzipIndexBuilder, HEADER_BYTES, IndexRefused, RECORD_BYTES, decodeHeader, decodeRecord, encodeHeader, gzipHeaderLength,
  type GzipIndexRecord,
} from '../../src/image/format/gzip-index.ts';
import { GzipIndexReader, indexMismatch } from '../../src/image/source/gzip-index-source.ts';
import { SegmentInflater } from '../../src/image/parallel/segment-inflate.ts';
import { takeLoan } from '../../src/image/sink/block-loan.ts';
import { takeZeroGrains } from '../../src/image/sink/zeroruns.ts';
import type { ImageResponse } from '../../src/image/source/fetch.ts';

const MiB = 1 << 20;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A small OS-like image: text, random data, long zero runs, an odd tail (not a block multiple). */
function osLikeImage(): Buffer {
  const text = Buffer.from('root:x:0:0:root:/root:/bin/bash\nbooty image line with some words\n'.repeat(60000));
  return Buffer.concat([
    text.subarray(0, 3 * MiB), randomBytes(2 * MiB), Buffer.alloc(9 * MiB), randomBytes(MiB + 12345),
    text.subarray(0, 2 * MiB), Buffer.alloc(5 * MiB), randomBytes(777_777),
  ]);
}
const image = osLikeImage();
const pigz = (data: Buffer, ...args: string[]) => execFileSync('pigz', ['-c', ...args], { input: data, maxBuffer: 1 << 30 });
const gz6 = pigz(image, '-6', '-p', '2');

function chunked(b: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += n) out.push(b.subarray(i, i + n));
  return out;
}

function buildIndex(gz: Buffer, chunk = MiB, etag = ''): Buffer {
  const records: Buffer[] = [];
  const b = new GzipIndexBuilder({ etag, emit: (r) => records.push(r) });
  for (const c of chunked(gz, chunk)) b.push(c);
  return Buffer.concat([b.finish(), ...records]);
}

interface Inflated { out: Buffer; consumed: number; segments: number; zeroMaps: number; zeroSegments: number; libdeflateSegments: number }

/** The workers' inflate: libdeflate where it loads (default), or node:zlib alone. */
const INFLATERS = [{ name: 'libdeflate', libdeflate: undefined }, { name: 'node:zlib', libdeflate: null }] as const;

async function inflate(gz: Buffer, index: Buffer, o: { workers?: number; chunk?: number; extra?: Buffer; libdeflate?: null } = {}): Promise<Inflated> {
  const reader = new GzipIndexReader(Readable.from(chunked(index, 5000)));
  await reader.readHeader();
  const s = new SegmentInflater({ index: reader, workers: o.workers ?? 2, libdeflate: o.libdeflate });
  if (o.libdeflate === undefined) assert.equal(s.inflate, 'libdeflate', 'libdeflate0 is installed by scripts/host-deps.sh');
  const parts: Buffer[] = [];
  let zeroMaps = 0;
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      if (takeZeroGrains(c) !== undefined) zeroMaps++;
      parts.push(Buffer.from(c));
      const giveBack = takeLoan(c)?.giveBack;
      assert.ok(giveBack, 'blocks are lent');
      setImmediate(giveBack);
      cb();
    },
  });
  const input = o.extra ? Buffer.concat([gz, o.extra]) : gz;
  await pipeline(Readable.from(chunked(input, o.chunk ?? 65536)), s, sink);
  return { out: Buffer.concat(parts), consumed: s.bytesWritten, segments: s.segments, zeroMaps, zeroSegments: s.zeroSegments, libdeflateSegments: s.libdeflateSegments };
}

test('crc32Combine gives the CRC-32 of the concatenation', () => {
  const a = randomBytes(100_003);
  const b = randomBytes(77_777);
  assert.equal(crc32Combine(zlib.crc32(a), zlib.crc32(b), b.length), zlib.crc32(Buffer.concat([a, b])));
  assert.equal(crc32Combine(zlib.crc32(a), zlib.crc32(Buffer.alloc(0)), 0), zlib.crc32(a));
  assert.equal(crc32Combine(0, zlib.crc32(b), b.length), zlib.crc32(b));
  const z = Buffer.alloc(5 * MiB + 3);
  assert.equal(crc32Combine(zlib.crc32(a), zlib.crc32(z), z.length), zlib.crc32(Buffer.concat([a, z])));
});

test('gzipHeaderLength reads every optional field of RFC 1952', () => {
  assert.equal(gzipHeaderLength(zlib.gzipSync(Buffer.from('x'))), 10);
  // FEXTRA (XLEN 4), FNAME, FCOMMENT, FHCRC
  const h = Buffer.from([0x1f, 0x8b, 8, 4 | 8 | 16 | 2, 0, 0, 0, 0, 0, 3, 4, 0, 1, 2, 3, 4, 0x61, 0x62, 0, 0x63, 0, 0xaa, 0xbb, 0x99]);
  assert.equal(gzipHeaderLength(h), 23);
  assert.equal(gzipHeaderLength(h.subarray(0, 18)), 'more');
  assert.equal(gzipHeaderLength(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0, 0, 0])), undefined);
});

test('the index of a pigz image: one segment per 4 MiB, header and records consistent', () => {
  const idx = buildIndex(gz6);
  const h = decodeHeader(idx.subarray(0, HEADER_BYTES));
  assert.equal(h.count, Math.ceil(image.length / (4 * MiB)));
  assert.equal(h.totalSize, image.length);
  assert.equal(h.fileSize, gz6.length);
  assert.equal(h.sha256, sha(gz6));
  assert.equal(h.deflateStart, gzipHeaderLength(gz6));
  assert.equal(h.trailerCrc, gz6.readUInt32LE(gz6.length - 8));
  let at = HEADER_BYTES;
  let cOff = h.deflateStart;
  for (let i = 0; i < h.count; i++) {
    const r = decodeRecord(idx.subarray(at, at + RECORD_BYTES));
    assert.equal(r.cOff, cOff, `record ${i} starts where the last one ended`);
    assert.equal(r.uOff, i * 4 * MiB);
    assert.equal(r.uLen, Math.min(4 * MiB, image.length - r.uOff));
    assert.equal(r.crc, zlib.crc32(image.subarray(r.uOff, r.uOff + r.uLen)), `record ${i} CRC-32`);
    assert.equal(r.prefixLength > 0, i > 0, 'every segment but the first carries its window');
    const zeros = image.subarray(r.uOff, r.uOff + r.uLen).every((b) => b === 0);
    assert.equal(r.flags === FLAG_ZEROS, zeros, `record ${i} is flagged all-zero exactly when it is`);
    at += RECORD_BYTES + r.prefixLength;
    cOff += r.cLen;
  }
  assert.equal(at, idx.length, 'nothing after the last record');
  assert.equal(cOff, gz6.length - 8, 'the segments end where the trailer starts');
  // the same index whatever chunks the file arrives in
  assert.ok(buildIndex(gz6, 4093).equals(idx));
});

for (const args of [['-6', '-p', '2'], ['-1'], ['-9', '-p', '1'], ['-6', '-b', '1024'], ['-6', '-b', '96']]) for (const inflater of INFLATERS) {
  test(`pigz ${args.join(' ')}: inflated in segments by ${inflater.name}, the bytes are the image's`, async () => {
    const gz = pigz(image, ...args);
    const idx = buildIndex(gz);
    const r = await inflate(gz, idx, { libdeflate: inflater.libdeflate });
    // libdeflate takes every inflated segment that fits its 4 MiB block (all of them with pigz's
    // default 128 KiB chunks: points on every 4 MiB multiple); longer ones (96 KiB chunks meet a
    // 4 MiB multiple only every 12 MiB) go through node:zlib, streaming across blocks
    const recs = records(idx);
    const inflated = recs.filter((rec, i) => rec.flags !== FLAG_ZEROS || i === recs.length - 1);
    const fit = inflated.filter((rec) => rec.uLen <= 4 * MiB).length;
    assert.equal(r.libdeflateSegments, inflater.libdeflate === null ? 0 : fit);
    if (args.includes('96')) assert.ok(inflated.length > fit, 'some segments are longer than a block');
    else assert.equal(fit, inflated.length);
    assert.ok(r.out.equals(image), 'output differs from the image');
    assert.equal(r.consumed, gz.length);
    assert.equal(r.segments, recs.length);
    if (!args.includes('96')) assert.equal(r.segments, Math.ceil(image.length / (4 * MiB)));
    assert.ok(r.zeroMaps > 0, 'the workers pass their zero maps on');
    // the image's 9 MiB of zeros hold one whole 4 MiB segment (4-8 MiB... 8-12 MiB): not inflated
    if (!args.includes('96')) assert.ok(r.zeroSegments >= 1, `all-zero segments are written as zero runs (${r.zeroSegments})`);
  });
}

const inflateWith = inflate;

function records(idx: Buffer): GzipIndexRecord[] {
  const h = decodeHeader(idx.subarray(0, HEADER_BYTES));
  const out: GzipIndexRecord[] = [];
  for (let i = 0, at = HEADER_BYTES; i < h.count; i++) {
    const r = decodeRecord(idx.subarray(at, at + RECORD_BYTES));
    out.push(r);
    at += RECORD_BYTES + r.prefixLength;
  }
  return out;
}

test('any chunking and worker count give the same bytes', async () => {
  const idx = buildIndex(gz6);
  for (const [workers, chunk] of [[1, MiB], [2, 1021], [3, 7 * 1024], [4, 3 * MiB]] as const) {
    const r = await inflate(gz6, idx, { workers, chunk });
    assert.ok(r.out.equals(image), `workers ${workers}, chunk ${chunk}`);
  }
});

test('bytes after the gzip member are left unconsumed (deploy refuses them as trailing garbage)', async () => {
  const r = await inflate(gz6, buildIndex(gz6), { extra: Buffer.from('garbage!') });
  assert.ok(r.out.equals(image));
  assert.equal(r.consumed, gz6.length);
});

test('images without usable points get no index, with the reason', () => {
  const refused = (gz: Buffer) => {
    try { buildIndex(gz); } catch (e) {
      assert.ok(e instanceof IndexRefused, String(e));
      return e.message;
    }
    assert.fail('an index was built');
  };
  assert.match(refused(zlib.gzipSync(image)), /no usable block boundary|gzip\(1\)|not written by pigz/);
  assert.match(refused(Buffer.concat([gz6, gz6])), /more than one gzip member/);
  assert.match(refused(gz6.subarray(0, gz6.length - 100)), /truncated/);
  assert.match(refused(gz6.subarray(0, 5)), /gzip header/);
  assert.match(refused(Buffer.alloc(0)), /empty/);
  assert.match(refused(zlib.zstdCompressSync(image)), /not a gzip file/);
  assert.match(refused(pigz(Buffer.from('small'), '-6')), /no usable block boundaries/);
  const bad = Buffer.from(gz6);
  bad.writeUInt32LE((bad.readUInt32LE(bad.length - 8) ^ 1) >>> 0, bad.length - 8);
  assert.match(refused(bad), /corrupt \(CRC-32/);
  const flipped = Buffer.from(gz6);
  flipped[Math.floor(flipped.length / 2)] ^= 0x55;
  assert.match(refused(flipped), /corrupt|CRC-32|not a sync point/);
});

for (const { name, libdeflate } of INFLATERS) test(`${name}: a damaged image is caught: segment CRC, inflate error, truncation`, async () => {
  const inflate = (gz: Buffer, index: Buffer) => inflateWith(gz, index, { libdeflate });
  const idx = buildIndex(gz6);
  const flipped = Buffer.from(gz6);
  flipped[Math.floor(flipped.length * 0.3)] ^= 0x10;
  await assert.rejects(inflate(flipped, idx), (e: Error) => e.name === 'SegmentCorrupt' && /gzip segment \d+ \(image bytes/.test(e.message));
  const trailer = Buffer.from(gz6);
  trailer[trailer.length - 8] ^= 1;
  await assert.rejects(inflate(trailer, idx), /incorrect data check \(CRC-32 of the segments/);
  await assert.rejects(inflate(gz6.subarray(0, gz6.length - 5000), idx), (e: Error & { code?: string }) => e.code === 'Z_BUF_ERROR' && /unexpected end/.test(e.message));
  await assert.rejects(inflate(gz6.subarray(0, gz6.length - 3), idx), /unexpected end/);
});

for (const { name, libdeflate } of INFLATERS) test(`${name}: a damaged or foreign index is caught, never trusted`, async () => {
  const inflate = (gz: Buffer, index: Buffer) => inflateWith(gz, index, { libdeflate });
  const idx = buildIndex(gz6);
  const h = decodeHeader(idx.subarray(0, HEADER_BYTES));
  const recordAt = (n: number) => {
    let at = HEADER_BYTES;
    for (let i = 0; i < n; i++) at += RECORD_BYTES + decodeRecord(idx.subarray(at, at + RECORD_BYTES)).prefixLength;
    return at;
  };
  const r1 = decodeRecord(idx.subarray(HEADER_BYTES, HEADER_BYTES + RECORD_BYTES));
  // a flipped bit in the window before segment 4 (which starts in text and refers back into
  // it): the window does not decode, or the segment's CRC-32 is wrong
  const at4 = recordAt(4);
  const damaged = Buffer.from(idx);
  damaged[at4 + RECORD_BYTES + Math.floor(decodeRecord(idx.subarray(at4, at4 + RECORD_BYTES)).prefixLength / 2)] ^= 0x04;
  await assert.rejects(inflate(gz6, damaged), (e: Error) => /gzip segment 4/.test(e.message));
  // a segment CRC-32 that is not the image's
  const wrongCrc = Buffer.from(idx);
  wrongCrc.writeUInt32LE((wrongCrc.readUInt32LE(at4 + 24) ^ 1) >>> 0, at4 + 24);
  await assert.rejects(inflate(gz6, wrongCrc), /gzip segment 4 .*incorrect data check \(CRC-32 [0-9a-f]+, the index says/);
  // a data segment flagged all-zero: refused (its CRC-32 is not that of zeros), never written as zeros
  const at1 = recordAt(1);
  const falseZero = Buffer.from(idx);
  falseZero.writeUInt32LE(FLAG_ZEROS, at1 + 32);
  await assert.rejects(inflate(gz6, falseZero), (e: Error) => e.name === 'GzipIndexError' && /says all zeros but its CRC-32/.test(e.message));
  // the zero segment (8-12 MiB) without its flag is simply inflated
  const at2 = recordAt(2);
  assert.equal(idx.readUInt32LE(at2 + 32), FLAG_ZEROS);
  const unflagged = Buffer.from(idx);
  unflagged.writeUInt32LE(0, at2 + 32);
  const r = await inflate(gz6, unflagged);
  assert.ok(r.out.equals(image));
  assert.equal(r.zeroSegments, 0);
  // a record whose offsets do not follow on
  const shifted = Buffer.from(idx);
  shifted.writeUInt32LE(r1.cLen + 1, HEADER_BYTES + 8);
  await assert.rejects(inflate(gz6, shifted), (e: Error) => e.name === 'GzipIndexError' && /out of sequence/.test(e.message));
  // an index cut short
  await assert.rejects(inflate(gz6, idx.subarray(0, idx.length - 100)), (e: Error) => e.name === 'GzipIndexError' && /ends early/.test(e.message));
  // another image's index: the header check refuses it before anything is decoded
  // (an image of another size; one of the very same size is caught by the segment CRC-32s and
  // the sha256 the index records, as the damaged-image cases show)
  const other = pigz(image.subarray(0, 10 * MiB), '-6');
  const res = { servedSize: other.length, etag: undefined, sha256: undefined } as unknown as ImageResponse;
  assert.match(indexMismatch(h, res, other.subarray(0, 64)) ?? '', /is for a \d+-byte file/);
  assert.equal(indexMismatch(h, { servedSize: gz6.length } as ImageResponse, gz6.subarray(0, 64)), undefined);
  assert.match(indexMismatch({ ...h, etag: '"a"' }, { servedSize: gz6.length, etag: '"b"' } as ImageResponse, gz6) ?? '', /ETag/);
  assert.match(indexMismatch(h, { servedSize: gz6.length, sha256: 'f'.repeat(64) } as ImageResponse, gz6) ?? '', /X-Image-Sha256/);
  assert.match(indexMismatch(h, {} as ImageResponse, gz6) ?? '', /Content-Length/);
  // header fields out of range
  assert.throws(() => decodeHeader(Buffer.concat([Buffer.from('NOTANIDX'), idx.subarray(8, HEADER_BYTES)])), /bad magic/);
  const v2 = Buffer.from(idx.subarray(0, HEADER_BYTES));
  v2[8] = 3;
  assert.throws(() => decodeHeader(v2), /version 3 is not supported/);
  assert.throws(() => decodeHeader(encodeHeader({ ...h, maxSegment: 64 * MiB })), /out of range/);
});

test('zerosOperator: appending zeros to a CRC-32 register, for any length', () => {
  for (const n of [0, 1, 2, 3, 7, 64, 65536, 65537, 4 * MiB, 4 * MiB + 12345]) {
    const a = randomBytes(1000);
    const z = Buffer.alloc(n);
    assert.equal(crc32Combine(zlib.crc32(a), zlib.crc32(z), n), zlib.crc32(Buffer.concat([a, z])), `length ${n}`);
    assert.equal(crc32Combine(zlib.crc32(a), zlib.crc32(z), n), crc32Combine(zlib.crc32(a), zlib.crc32(z), n), 'cached operator');
  }
});
