import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { detectFormat, looksLikeMarkup, refuseRawReason, zstdFrameContentSize } from '../../src/image/detect.ts';

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
