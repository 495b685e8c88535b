// The ring that carries a placed xz block's compressed bytes to its worker (block-input-ring.ts):
// every byte arrives once and in order through a ring much smaller than the block, whatever the
// sizes written and consumed; the writer waits while the ring is full; either side's stop ends the
// other's wait; a ring is bound to the next block only once the last one was consumed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { ByteQueue } from '../../src/image/byte-queue.ts';
import { RingReader, RingWriter } from '../../src/image/parallel/block-input-ring.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

function bytes(n: number, seed: number): Buffer {
  const r = seededRandom(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

test('a block 40 times the ring arrives whole and in order, in chunks of any size', async () => {
  const ring = new RingWriter(997);
  const block = bytes(40_000, 1);
  ring.bind(block.length);
  const reader = new RingReader(ring.shared, block.length);
  const r = seededRandom(2);
  const got: Buffer[] = [];
  const reading = (async () => {
    while (!reader.done) {
      const v = reader.view();
      if (v.len === 0) { assert.equal(await reader.more(() => false), true); continue; }
      const n = 1 + Math.floor(r() * v.len);
      got.push(Buffer.from(v.buf.subarray(v.off, v.off + n)));
      reader.advance(n);
      if (r() < 0.3) await new Promise((ok) => setImmediate(ok));
    }
  })();
  const q = new ByteQueue();
  for (let at = 0; at < block.length;) {
    const n = Math.min(block.length - at, 1 + Math.floor(r() * 3000));
    q.push(block.subarray(at, at + n));
    at += n;
    await ring.write(q, q.length, () => undefined);
  }
  await reading;
  assert.deepEqual(Buffer.concat(got), block);
  assert.equal(ring.free, true);
});

test('the writer waits while the ring is full, and goes on as the reader consumes', async () => {
  const ring = new RingWriter(100);
  ring.bind(250);
  const reader = new RingReader(ring.shared, 250);
  const q = new ByteQueue();
  q.push(bytes(250, 3));
  let wrote = false;
  const writing = ring.write(q, 250, () => undefined).then(() => { wrote = true; });
  await new Promise((ok) => setTimeout(ok, 50));
  assert.equal(wrote, false, 'the ring holds 100 bytes: the writer must be waiting');
  assert.equal(q.length, 150);
  while (!reader.done) {
    const v = reader.view();
    if (v.len === 0) { await reader.more(() => false); continue; }
    reader.advance(v.len);
  }
  await writing;
  assert.equal(wrote, true);
  assert.equal(q.length, 0);
});

test("the worker's stop ends the writer's wait with the deploy's failure", async () => {
  const ring = new RingWriter(64);
  ring.bind(1000);
  const reader = new RingReader(ring.shared, 1000);
  const q = new ByteQueue();
  q.push(bytes(1000, 4));
  const failure = new Error('the xz block at byte 12: Compressed data is corrupt');
  let failed: Error | undefined;
  const writing = ring.write(q, 1000, () => failed);
  const started = performance.now();
  setTimeout(() => { failed = failure; reader.stop(); }, 20);
  await assert.rejects(writing, (e) => e === failure);
  assert.ok(performance.now() - started < 900, 'woken by the stop, not by the wait\'s timeout');
});

test("the main thread's stop ends a worker's wait for bytes (another thread, as in a deploy)", async () => {
  const ring = new RingWriter(64);
  ring.bind(1000);
  const src = `
    const { parentPort, workerData } = require('node:worker_threads');
    const ctl = new Int32Array(workerData.ctl);
    parentPort.on('message', () => {}); // alive while it waits, as a block worker is
    (async () => {
      const w = Atomics.waitAsync(ctl, 0, 0, 10000);
      const r = w.async ? await w.value : w.value;
      parentPort.postMessage({ r, stop: Atomics.load(ctl, 2) });
    })();`;
  const worker = new Worker(src, { eval: true, workerData: ring.shared });
  await new Promise((ok) => setTimeout(ok, 100));
  const started = performance.now();
  const reply = new Promise<{ r: string; stop: number }>((ok) => worker.once('message', ok));
  ring.stop();
  const m = await reply;
  await worker.terminate();
  assert.equal(m.stop, 1);
  assert.equal(m.r, 'ok');
  assert.ok(performance.now() - started < 5000);
  const reader = new RingReader(ring.shared, 1000);
  assert.equal(await reader.more(() => false), false, 'a stopped ring has no more bytes to wait for');
});

test('a ring is bound to the next block only once every byte of the last one was consumed', async () => {
  const ring = new RingWriter(32);
  ring.bind(10);
  const q = new ByteQueue();
  q.push(bytes(10, 5));
  await ring.write(q, 10, () => undefined);
  assert.equal(ring.free, false, 'written, not yet consumed');
  assert.throws(() => ring.bind(5), /still being read/);
  const reader = new RingReader(ring.shared, 10);
  const v = reader.view();
  assert.equal(v.len, 10);
  reader.advance(10);
  assert.equal(ring.free, true);
  ring.bind(5);
  assert.equal(new RingReader(ring.shared, 5).view().len, 0, 'the next block starts empty');
});
