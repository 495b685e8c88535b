// The ImageWriter's onPrepare hook (src/image/sink/writer.ts), on a regular file: called once,
// when the image's head passed checkHead and before anything reaches the disk (the deploy logs
// it: a boot's log then tells decoding from the zeroing of the disk's ends), and never when the
// head check refuses the image (the disk stays as it was).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { WriteTarget } from '../../src/image/sink/target.ts';
import { ImageWriter } from '../../src/image/sink/writer.ts';

const MiB = 1 << 20;

function disk(): { file: string; before: Buffer; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-writer-prepare-'));
  const file = path.join(dir, 'disk.img');
  const before = Buffer.alloc(8 * MiB, 0x5a);
  fs.writeFileSync(file, before);
  return { file, before, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

test('onPrepare: once, after the head check passed and before the first byte reaches the disk', async () => {
  const d = disk();
  try {
    const image = Buffer.alloc(6 * MiB, 7);
    const target = WriteTarget.open(d.file);
    const seen: string[] = [];
    const w = new ImageWriter({
      target, blockSize: MiB, limit: 8 * MiB,
      checkHead: { bytes: 4096, check: () => { seen.push('check'); return undefined; } },
      onPrepare: () => { seen.push(`prepare (disk untouched: ${fs.readFileSync(d.file).equals(d.before)})`); },
      onBytes: () => { if (!seen.includes('bytes')) seen.push('bytes'); },
    });
    await pipeline(Readable.from([image.subarray(0, 3 * MiB), image.subarray(3 * MiB)]), w);
    await w.commit();
    await w.close();
    assert.deepEqual(seen, ['check', 'prepare (disk untouched: true)', 'bytes']);
    assert.ok(fs.readFileSync(d.file).subarray(0, 6 * MiB).equals(image));
  } finally { d.cleanup(); }
});

test('onPrepare: not called when the head check refuses the image; the disk keeps every byte', async () => {
  const d = disk();
  try {
    const target = WriteTarget.open(d.file);
    let prepared = 0;
    const w = new ImageWriter({
      target, blockSize: MiB, limit: 8 * MiB,
      checkHead: { bytes: 4096, check: () => new Error('not a disk image') },
      onPrepare: () => { prepared++; },
    });
    await assert.rejects(pipeline(Readable.from([Buffer.alloc(2 * MiB, 1)]), w), /not a disk image/);
    await w.abort().catch(() => {});
    assert.equal(prepared, 0);
    assert.ok(fs.readFileSync(d.file).equals(d.before), 'not a byte written');
  } finally { d.cleanup(); }
});
