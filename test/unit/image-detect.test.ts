import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { classifyHead, detectFormat, looksLikeMarkup, refuseRawReason, zstdFrameContentSize } from '../../src/image/format/detect.ts';
import { UNSUPPORTED_HEAD_BYTES, UNSUPPORTED_IDS } from '../../src/image/format/unsupported-formats.ts';

test('format comes from magic bytes only', () => {
  assert.equal(detectFormat(zlib.gzipSync(Buffer.from('x'))), 'gzip');
  assert.equal(detectFormat(zlib.zstdCompressSync(Buffer.from('x'))), 'zstd');
  assert.equal(detectFormat(Buffer.from([0xeb, 0x63, 0x90])), 'raw'); // an MBR boot sector
  assert.equal(detectFormat(Buffer.from([0x1f])), 'raw'); // too short to be gzip
  assert.equal(detectFormat(Buffer.from([0x28, 0xb5, 0x2f])), 'raw');
  assert.equal(detectFormat(Buffer.alloc(0)), 'raw');
});

test('zstd Frame_Content_Size is read from real frames of every field width', () => {
  for (const size of [0, 1, 200, 255, 256, 300, 65791, 65792, 1 << 20, 3 * (1 << 20) + 7]) {
    const frame = zlib.zstdCompressSync(Buffer.alloc(size, 1), { pledgedSrcSize: size });
    assert.equal(zstdFrameContentSize(frame), size, `size ${size}`);
  }
});

test('zstd without a declared size (streamed) gives undefined; gzip and short heads too', async () => {
  const z = zlib.createZstdCompress();
  const chunks: Buffer[] = [];
  z.on('data', (c: Buffer) => chunks.push(c));
  z.write(Buffer.alloc(100000, 3));
  z.end();
  await new Promise((r) => z.on('end', r));
  assert.equal(zstdFrameContentSize(Buffer.concat(chunks)), undefined);
  assert.equal(zstdFrameContentSize(zlib.gzipSync(Buffer.from('x'))), undefined);
  const frame = zlib.zstdCompressSync(Buffer.alloc(5000), { pledgedSrcSize: 5000 });
  assert.equal(zstdFrameContentSize(frame.subarray(0, 5)), undefined);
});

test('markup is recognised, disk images are not', () => {
  assert.equal(looksLikeMarkup(Buffer.from('<!DOCTYPE html><html><body>502 Bad Gateway')), true);
  assert.equal(looksLikeMarkup(Buffer.from('\n  <html>\n<head><title>404</title>')), true);
  assert.equal(looksLikeMarkup(Buffer.from('\ufeff<?xml version="1.0"?><Error>')), true);
  const mbr = Buffer.alloc(512);
  mbr[510] = 0x55; mbr[511] = 0xaa;
  assert.equal(looksLikeMarkup(mbr), false);
  assert.equal(looksLikeMarkup(Buffer.from('EFI PART')), false);
});

test('raw refusal: pages, page content types, empty streams', () => {
  const mbr = Buffer.alloc(512, 0);
  assert.equal(refuseRawReason(mbr, 'application/octet-stream', false), undefined);
  assert.match(refuseRawReason(mbr, 'text/html; charset=utf-8', false) ?? '', /text\/html/);
  assert.equal(refuseRawReason(mbr, 'text/html', true), undefined, 'explicit raw accepts a bad label');
  assert.match(refuseRawReason(Buffer.from('<html>'), 'application/octet-stream', true) ?? '', /web page/);
  assert.match(refuseRawReason(Buffer.alloc(0), undefined, false) ?? '', /empty/);
});

test('classifyHead: gzip and zstd decode, pzstd\'s skippable frame before a zstd frame too', () => {
  assert.deepEqual(classifyHead(zlib.gzipSync(Buffer.from('x'))), { format: 'gzip' });
  const skippable = Buffer.alloc(12);
  skippable.writeUInt32LE(0x184d2a50, 0);
  skippable.writeUInt32LE(4, 4);
  assert.deepEqual(classifyHead(Buffer.concat([skippable, zlib.zstdCompressSync(Buffer.from('x'))])), { format: 'zstd' });
  // a skippable frame followed by nothing booty knows is refused, not written raw
  assert.equal(classifyHead(Buffer.concat([skippable, Buffer.alloc(600)])).unsupported?.id, 'skippable-frame');
});

test('classifyHead: raw disks are never taken for a refused format', () => {
  const heads: Buffer[] = [];
  const grub = Buffer.alloc(UNSUPPORTED_HEAD_BYTES);
  grub.set([0xeb, 0x63, 0x90], 0); grub[510] = 0x55; grub[511] = 0xaa;
  heads.push(grub);
  heads.push(Buffer.alloc(UNSUPPORTED_HEAD_BYTES)); // a zeroed first sector (GPT disks made by sgdisk)
  const gpt = Buffer.alloc(UNSUPPORTED_HEAD_BYTES);
  gpt[510] = 0x55; gpt[511] = 0xaa; gpt.write('EFI PART', 512, 'latin1');
  heads.push(gpt);
  const win = Buffer.alloc(UNSUPPORTED_HEAD_BYTES);
  win.set([0x33, 0xc0, 0x8e, 0xd0, 0xbc, 0x00, 0x7c], 0); win[510] = 0x55; win[511] = 0xaa;
  heads.push(win);
  // and 20,000 heads of noise (seeded): short magics (zlib, cpio, lzma-alone) must hold against them
  let x = 0x12345678;
  const next = () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return x >>> 0; };
  for (let i = 0; i < 20_000; i++) {
    const h = Buffer.alloc(600);
    for (let j = 0; j < h.length; j += 4) h.writeUInt32LE(next(), j);
    heads.push(h);
  }
  const refused = heads.map((h) => classifyHead(h)).filter((c) => c.unsupported !== undefined);
  assert.deepEqual(refused.map((c) => c.unsupported?.id), []);
});

test('classifyHead: header details of refused formats (hand-built headers)', () => {
  const q = Buffer.alloc(1024);
  q.write('QFI\xfb', 0, 'latin1'); q.writeUInt32BE(3, 4);
  q.writeBigUInt64BE(512n, 8); q.writeUInt32BE(9, 16); q.write('base.img!', 512);
  q.writeUInt32BE(2, 32); q.writeUInt32BE(2, 60); q.writeBigUInt64BE(4n, 72);
  const u = classifyHead(q).unsupported;
  assert.equal(u?.id, 'qcow2');
  assert.match(u?.what ?? '', /version 3.*backing file "base\.img!".*encrypted \(LUKS\).*2 internal snapshots.*external data file/);
  assert.match(u?.advice ?? '', /backing chain/);
  for (const id of ['lz4', 'lzip', 'qcow2', 'tar', 'iso9660', 'zip', 'vmdk', 'vhdx']) assert.ok(UNSUPPORTED_IDS.includes(id), id);
});
