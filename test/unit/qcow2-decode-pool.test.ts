// The qcow2 decode workers: batches of compressed clusters, each followed by the bytes of the next
// (QEMU names whole sectors, so a cluster's compressed bytes run on into its neighbour's), decoded
// into whole clusters by libdeflate and by the node:zlib fallback alike; a damaged cluster is
// reported by its index in the batch. (Images made by qemu-img: test/integration/deploy-qcow2.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { ClusterDecodeError, ClusterDecodePool, ClusterSlot } from '../../src/image/qcow2/cluster-decode-pool.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

const CS = 65536;

function batch(method: 'deflate' | 'zstd', clusters: Buffer[]): { data: Buffer; ranges: Uint32Array } {
  const parts: Buffer[] = [];
  const ranges: number[] = [];
  let at = 0;
  for (const c of clusters) {
    const z = method === 'deflate' ? zlib.deflateRawSync(c, { level: 6 }) : zlib.zstdCompressSync(c);
    // the tail of the last sector: what follows in the file (here: noise)
    const tail = Buffer.from(z.subarray(0, 300)).reverse();
    parts.push(z, tail);
    ranges.push(at, z.length + tail.length);
    at += z.length + tail.length;
  }
  const data = Buffer.allocUnsafeSlow(at);
  Buffer.concat(parts).copy(data);
  return { data, ranges: Uint32Array.from(ranges) };
}

function clusters(n: number, seed: number): Buffer[] {
  const rand = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const b = Buffer.alloc(CS, `cluster ${i} of a qcow2 image\n`);
    for (let k = 0; k < 2000; k++) b[Math.floor(rand() * CS)] = Math.floor(rand() * 256);
    return b;
  });
}

for (const libdeflate of [true, false]) {
  test(`deflate and zstd clusters with the next cluster's bytes after them decode whole (${libdeflate ? 'libdeflate where it loads' : 'node:zlib'})`, async () => {
    const pool = new ClusterDecodePool(2, { libdeflate });
    // one slot reused for every batch, as cluster-stream.ts does; small, so that it must grow
    const slot = new ClusterSlot(1024, 4096);
    const decode = (method: 'deflate' | 'zstd', data: Buffer, ranges: Uint32Array) => {
      slot.fit(data.length, 0);
      data.copy(slot.input);
      return pool.decode(method, CS, slot, data.length, ranges);
    };
    try {
      for (const method of ['deflate', 'zstd'] as const) {
        const want = clusters(12, method === 'zstd' ? 2 : 1);
        for (let round = 0; round < 3; round++) {
          const { data, ranges } = batch(method, want);
          const out = await decode(method, data, ranges);
          assert.ok(out.equals(Buffer.concat(want)), `${method} round ${round}`);
        }
        const { data, ranges } = batch(method, want);
        for (let k = 40; k < 80; k++) data[ranges[2 * 5] + k] ^= 0xa5;
        await assert.rejects(decode(method, data, ranges), (e: ClusterDecodeError) => {
          assert.ok(e instanceof ClusterDecodeError, String(e));
          assert.equal(e.index, 5);
          return true;
        });
        // a cluster that decodes short is damaged too
        const short = batch(method, [Buffer.alloc(CS - 512, 1)]);
        await assert.rejects(decode(method, short.data, short.ranges), /decodes to 65024 bytes, not 65536/);
      }
    } finally {
      await pool.close();
    }
  });
}
