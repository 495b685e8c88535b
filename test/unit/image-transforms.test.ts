import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChunkAligner, HashTap, SizeLimit, SizeLimitExceeded, peekHead } from '../../src/image/transforms.ts';
import { ZeroRunPlanner, type WriteOp } from '../../src/image/sink/zeroruns.ts';

function collector(): { w: Writable; data: () => Buffer } {
  const parts: Buffer[] = [];
  return { w: new Writable({ write(c, _e, cb) { parts.push(c as Buffer); cb(); } }), data: () => Buffer.concat(parts) };
}

function randomChunks(total: number, seed: Buffer): Buffer[] {
  const data = Buffer.alloc(total);
  for (let i = 0; i < total; i += seed.length) seed.copy(data, i);
  const out: Buffer[] = [];
  let pos = 0;
  let k = 7;
  while (pos < total) {
    k = (k * 1103515245 + 12345) % 2147483648;
    const n = Math.min(total - pos, 1 + (k % 70000));
    out.push(data.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

test('HashTap passes bytes unchanged and hashes exactly them', async () => {
  const chunks = randomChunks(300000, randomBytes(4099));
  const tap = new HashTap();
  let seen = 0;
  const tap2 = new HashTap({ onChunk: (n) => { seen += n; } });
  const c = collector();
  await pipeline(Readable.from(chunks), tap, tap2, c.w);
  const all = Buffer.concat(chunks);
  assert.ok(c.data().equals(all));
  assert.equal(tap.bytes, all.length);
  assert.equal(seen, all.length);
  assert.equal(tap.digest(), createHash('sha256').update(all).digest('hex'));
  assert.equal(tap.digest(), tap2.digest());
});

test('SizeLimit passes exactly the limit and fails beyond it without passing the crossing chunk', async () => {
  const ok = collector();
  await pipeline(Readable.from([Buffer.alloc(600), Buffer.alloc(400)]), new SizeLimit(1000), ok.w);
  assert.equal(ok.data().length, 1000);

  const over = collector();
  await assert.rejects(
    pipeline(Readable.from([Buffer.alloc(600), Buffer.alloc(401)]), new SizeLimit(1000), over.w),
    (e: unknown) => e instanceof SizeLimitExceeded && e.limit === 1000,
  );
  assert.equal(over.data().length, 600);
});

test('ChunkAligner re-cuts any chunking into full blocks plus a tail, bytes in order', () => {
  const chunks = randomChunks(1_000_003, randomBytes(997));
  const a = new ChunkAligner(65536);
  const blocks: Buffer[] = [];
  for (const chunk of chunks) {
    let pos = 0;
    while (pos < chunk.length) {
      if (a.needsBlock()) a.setBlock(Buffer.alloc(65536));
      pos = a.fill(chunk, pos);
      if (a.full()) { const b = a.take()!; assert.equal(b.length, 65536); blocks.push(b.buf); }
    }
  }
  const tail = a.take()!;
  assert.equal(tail.length, 1_000_003 % 65536);
  blocks.push(tail.buf.subarray(0, tail.length));
  assert.equal(blocks.length, Math.ceil(1_000_003 / 65536));
  assert.ok(Buffer.concat(blocks).equals(Buffer.concat(chunks)));
  assert.equal(a.take(), undefined);
  assert.throws(() => a.fill(Buffer.alloc(1)), /no block/);
});

test('peekHead returns the head and a stream that still yields every byte', async () => {
  const chunks = [Buffer.from('ab'), Buffer.from('cdef'), Buffer.from('ghijklmnop')];
  const { head, rest } = await peekHead(Readable.from(chunks), 5);
  assert.equal(head.toString(), 'abcde');
  const c = collector();
  await pipeline(rest, c.w);
  assert.equal(c.data().toString(), 'abcdefghijklmnop');

  const short = await peekHead(Readable.from([Buffer.from('xyz')]), 512);
  assert.equal(short.head.toString(), 'xyz');
  const c2 = collector();
  await pipeline(short.rest, c2.w);
  assert.equal(c2.data().toString(), 'xyz');

  const empty = await peekHead(Readable.from([]), 10);
  assert.equal(empty.head.length, 0);
});

/** Applies ops to `disk` (pre-filled with garbage) and checks it then equals `image`. */
function apply(disk: Buffer, ops: WriteOp[]): void {
  for (const op of ops) {
    if (op.kind === 'data') op.buf.copy(disk, op.offset);
    else disk.fill(0, op.offset, op.offset + op.length);
  }
}

test('ZeroRunPlanner: ops reproduce the image exactly over garbage, zeros go as zero runs', () => {
  const G = 64 * 1024;
  const block = 1024 * 1024;
  const size = 24 * block + 12345; // odd tail
  const image = Buffer.alloc(size);
  // data islands: small (inside blocks), spanning block boundaries, single bytes
  const islands: Array<[number, number]> = [[0, 5000], [3 * block - 100, 300], [5 * block + 7, 1], [9 * block + G * 3, G * 2],
    [10 * block - 1, 2], [20 * block, block + 10], [size - 10, 10]];
  for (const [at, len] of islands) randomBytes(len).copy(image, at);
  for (const blockSize of [block, 2 * block, 3 * block + G]) {
    const planner = new ZeroRunPlanner({ granularity: G, minRun: 256 * 1024 });
    const disk = Buffer.alloc(size, 0xa5);
    const ops: WriteOp[] = [];
    for (let off = 0; off < size; off += blockSize) {
      const b = Buffer.from(image.subarray(off, Math.min(size, off + blockSize)));
      ops.push(...planner.plan(off, b));
    }
    ops.push(...planner.finish());
    apply(disk, ops);
    assert.ok(disk.equals(image), `block size ${blockSize}`);
    const zeroBytes = ops.filter((o) => o.kind === 'zero').reduce((n, o) => n + (o.kind === 'zero' ? o.length : 0), 0);
    const dataBytes = ops.filter((o) => o.kind === 'data').reduce((n, o) => n + (o.kind === 'data' ? o.buf.length : 0), 0);
    assert.equal(zeroBytes + dataBytes, size, 'every byte covered exactly once');
    assert.ok(zeroBytes > 15 * block, `zeros skipped: ${zeroBytes}`);
    // the long zero stretch between islands is one op, not one per block
    assert.ok(ops.some((o) => o.kind === 'zero' && o.length > 8 * block));
    for (const o of ops) if (o.kind === 'zero') assert.equal(o.offset % G, 0);
  }
});

test('ZeroRunPlanner: disabled gives one data op per block; order is enforced', () => {
  const p = new ZeroRunPlanner({ enabled: false });
  const ops = p.plan(0, Buffer.alloc(1000));
  assert.deepEqual(ops.map((o) => o.kind), ['data']);
  assert.throws(() => p.plan(5, Buffer.alloc(1)), /expected 1000/);
  const q = new ZeroRunPlanner({ granularity: 4096, minRun: 8192 });
  // a short zero gap inside data stays part of the data write
  const b = Buffer.alloc(4096 * 5, 1);
  b.fill(0, 4096, 8192);
  assert.deepEqual(q.plan(0, b).map((o) => o.kind), ['data']);
});

test('ZeroRunPlanner: a producer\'s zero map gives the same ops as scanning', () => {
  const G = 64 * 1024;
  const block = Buffer.alloc(64 * G, 3);
  for (const g of [0, 1, 2, 9, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 60, 61, 62, 63]) block.fill(0, g * G, (g + 1) * G);
  const map = new Uint8Array(64);
  for (let g = 0; g < 64; g++) map[g] = block.subarray(g * G, (g + 1) * G).every((b) => b === 0) ? 1 : 0;
  const plan = (withMap: boolean) => {
    const p = new ZeroRunPlanner();
    const ops = [...p.plan(0, block, withMap ? map : undefined), ...p.plan(block.length, block, withMap ? map : undefined), ...p.finish()];
    return ops.map((o) => (o.kind === 'zero' ? `z${o.offset}+${o.length}` : `d${o.offset}+${o.buf.length}`));
  };
  assert.deepEqual(plan(true), plan(false));
  // the map is believed: a map that calls a data granule zero makes a zero run there (the producer
  // is the decoder that just wrote the block; segment-inflate.ts builds it with a full compare)
  const lying = new Uint8Array(64).fill(1);
  const ops = new ZeroRunPlanner().plan(0, block, lying);
  assert.equal(ops.filter((o) => o.kind === 'data').length, 0);
});
