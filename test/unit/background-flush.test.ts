// Background flushes during a deploy (src/image/sink/background-flush.ts): one at a time, every
// `every` bytes written; stopped after quick ones (nothing buffered beneath the disk); a failed
// one fails the write stream; through the ImageWriter the image still lands byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { BackgroundFlush } from '../../src/image/sink/background-flush.ts';
import { WriteTarget } from '../../src/image/sink/target.ts';
import { ImageWriter } from '../../src/image/sink/writer.ts';

const MiB = 1 << 20;

/** A sync whose calls the test ends by hand, with a clock the test moves. */
function manualSync() {
  const pending: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  let clock = 0;
  return {
    pending,
    now: () => clock,
    advance: (ms: number) => { clock += ms; },
    sync: () => new Promise<void>((resolve, reject) => { pending.push({ resolve, reject }); }),
  };
}

test('a flush every `every` bytes, never two at once; bytes written meanwhile count toward the next', async () => {
  const m = manualSync();
  const f = new BackgroundFlush(m.sync, { every: 10, now: m.now });
  f.wrote(4);
  assert.equal(m.pending.length, 0);
  f.wrote(6);
  assert.equal(m.pending.length, 1, 'the first flush after 10 bytes');
  f.wrote(30);
  assert.equal(m.pending.length, 1, 'none while one runs');
  m.advance(50);
  m.pending[0]!.resolve();
  await f.settle();
  f.wrote(10);
  assert.equal(m.pending.length, 2, 'the next one once it ended');
  m.advance(50);
  m.pending[1]!.resolve();
  await f.settle();
  assert.equal(f.flushes, 2);
  assert.equal(f.stopped, false, 'slow flushes go on: something beneath the disk buffers');
  assert.match(f.describe(), /^2 background flushes \(0\.1 s\)$/);
});

test('quick flushes (nothing buffered beneath the disk): they stop after two in a row', async () => {
  const m = manualSync();
  const f = new BackgroundFlush(m.sync, { every: 1, now: m.now });
  for (let i = 0; i < 2; i++) {
    f.wrote(1);
    m.advance(1);
    m.pending[i]!.resolve();
    await f.settle();
  }
  assert.equal(f.stopped, true);
  f.wrote(100);
  assert.equal(m.pending.length, 2, 'no flush after they stopped');
  assert.match(f.describe(), /stopped: nothing buffered beneath the disk/);
});

test('every 0: no background flush at all', () => {
  const m = manualSync();
  const f = new BackgroundFlush(m.sync, { every: 0, now: m.now });
  f.wrote(1 << 30);
  assert.equal(m.pending.length, 0);
  assert.equal(f.describe(), 'background flushes off');
});

test('a failed flush is kept (settle never rejects) and no more are started', async () => {
  const m = manualSync();
  const f = new BackgroundFlush(m.sync, { every: 1, now: m.now });
  f.wrote(1);
  m.pending[0]!.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
  await f.settle();
  assert.match(f.failure?.message ?? '', /EIO/);
  f.wrote(1);
  assert.equal(m.pending.length, 1);
});

function tmpDisk(bytes: number): { file: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-bg-flush-'));
  const file = path.join(dir, 'disk.img');
  fs.writeFileSync(file, Buffer.alloc(bytes, 0x5a));
  return { file, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

test('ImageWriter: flushes while writing, then the image is on the disk byte for byte', async () => {
  const d = tmpDisk(16 * MiB);
  try {
    const image = Buffer.alloc(12 * MiB);
    for (let i = 0; i < image.length; i += 4096) image.writeUInt32LE(i, i);
    const target = WriteTarget.open(d.file);
    let syncs = 0;
    const sync = target.sync.bind(target);
    target.sync = async () => { syncs++; await sync(); };
    const w = new ImageWriter({ target, blockSize: MiB, limit: 16 * MiB, flushEvery: 2 * MiB });
    await pipeline(Readable.from([image.subarray(0, 5 * MiB), image.subarray(5 * MiB)]), w);
    await w.commit();
    await w.close();
    assert.ok(w.flusher.flushes >= 1, `background flushes: ${w.flusher.describe()}`);
    assert.ok(syncs > w.flusher.flushes, 'and the final fdatasync after them');
    assert.ok(fs.readFileSync(d.file).subarray(0, 12 * MiB).equals(image));
  } finally { d.cleanup(); }
});

test('ImageWriter: a failed background flush fails the stream with its error', async () => {
  const d = tmpDisk(16 * MiB);
  try {
    const target = WriteTarget.open(d.file);
    target.sync = async () => { throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }); };
    const w = new ImageWriter({ target, blockSize: MiB, limit: 16 * MiB, flushEvery: MiB });
    await assert.rejects(pipeline(Readable.from([Buffer.alloc(12 * MiB, 3)]), w), /EIO/);
    await w.abort().catch(() => {});
  } finally { d.cleanup(); }
});
