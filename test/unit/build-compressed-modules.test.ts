// Compressed kernel modules (builder side: compressModule; agent side: moduleImage), the archive
// compressor's window limit, and reading /init's #! option for the code cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { ARCHIVE_WINDOW_LOG, compressModule, compressor, defaultLevel } from '../../src/build/compress.ts';
import { shebangOption } from '../../src/build/initramfs.ts';
import { moduleCompression, moduleImage } from '../../src/sys/kmod.ts';

/** Something shaped like a module: an ELF header, repetitive sections and some noise. */
function fakeModule(): Buffer {
  const parts = [Buffer.from('\x7fELF\x02\x01\x01', 'latin1')];
  for (let i = 0; i < 200; i++) parts.push(Buffer.from(`__ksymtab_virtio_func_${i}\0section .text.${i}\0`), randomBytes(16));
  return Buffer.concat(parts);
}

test('a .ko.zst from the builder inflates back to the same module image in the agent', () => {
  const ko = fakeModule();
  const zst = compressModule(ko);
  assert.ok(zst.length < ko.length / 2, `compressed ${zst.length} of ${ko.length}`);
  assert.deepEqual([...zst.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], 'a plain zstd frame (what zstd(1) and kmod read)');
  assert.ok(moduleImage('kernel/drivers/block/virtio_blk.ko.zst', zst).equals(ko));
  // deterministic: the same module gives the same bytes (reproducible initramfs)
  assert.ok(compressModule(ko).equals(zst));
});

test('module files are told apart by name; .ko passes through, .ko.gz inflates, .ko.xz is refused with a reason', () => {
  const ko = fakeModule();
  assert.equal(moduleCompression('a/b.ko'), 'none');
  assert.equal(moduleCompression('a/b.ko.zst'), 'zstd');
  assert.equal(moduleCompression('a/b.ko.gz'), 'gzip');
  assert.equal(moduleCompression('a/b.ko.xz'), 'xz');
  assert.equal(moduleImage('a/b.ko', ko), ko);
  assert.ok(moduleImage('a/b.ko.gz', zlib.gzipSync(ko)).equals(ko));
  assert.throws(() => moduleImage('kernel/x.ko.xz', Buffer.alloc(8)), /x\.ko\.xz: xz-compressed modules are not supported.*\.ko\.zst/);
  // a damaged file fails loudly instead of handing garbage to the kernel
  const bad = compressModule(ko);
  bad[bad.length - 2] ^= 0xff;
  assert.throws(() => moduleImage('a/b.ko.zst', bad));
});

test('the default zstd level keeps the window the kernel must allocate at 16 MiB', async () => {
  assert.equal(defaultLevel('zstd'), 22);
  const chunks: Buffer[] = [];
  const z = compressor('zstd', defaultLevel('zstd'));
  z.on('data', (b: Buffer) => chunks.push(b));
  const done = new Promise((r) => z.on('end', r));
  z.end(Buffer.alloc(1 << 20, 7));
  await done;
  const frame = Buffer.concat(chunks);
  // frame header: magic, descriptor; without the single-segment flag the window descriptor follows
  const fhd = frame[4];
  assert.equal(fhd & 0x20, 0, 'the frame has a window descriptor');
  const wd = frame[5];
  const windowLog = 10 + (wd >> 3);
  assert.ok(windowLog <= ARCHIVE_WINDOW_LOG, `window 2^${windowLog}`);
  assert.equal(zlib.zstdDecompressSync(frame).length, 1 << 20);
});

test("/init's #! option is what the code cache is made with", () => {
  assert.equal(shebangOption('#!/bin/node --hash-seed=1\n// x\n'), '--hash-seed=1');
  assert.equal(shebangOption('#!/bin/node\n'), '');
  assert.throws(() => shebangOption("'use strict';\n"), /does not start with a #! line/);
});
