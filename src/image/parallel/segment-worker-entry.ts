// A segment worker thread of segment-inflate.ts (started by worker-start.ts): inflates one gzip
// index segment at a time into the blocks it is given, with libdeflate in one call when the
// segment is whole in the gather buffer, else with node:zlib's native handle as its bytes arrive;
// notes the all-zero 64 KiB grains and the CRC-32 of the output.
import { parentPort, workerData } from 'node:worker_threads';
import zlib from 'node:zlib';
import { exitIfAsked } from './worker-exit.ts';
import { syncZlib } from '../../sys/zlib-handle.ts';
import { workerLibdeflate } from '../../sys/libdeflate-worker.ts';
import type { SegmentReply, SegmentRequest, SegmentStart, SegmentWorkerData } from './segment-inflate.ts';

if (parentPort === null) throw new Error('segment-worker-entry.ts runs as a worker thread (segment-inflate.ts)');
const port = parentPort;
const data0 = workerData as SegmentWorkerData;
const C = zlib.constants;

const inf = syncZlib(zlib.createInflateRaw());
// the main thread asked decodeWorkerSupported() before choosing the segment path
if (inf === undefined) throw new Error("this Node's zlib lacks what the segment worker drives (src/sys/zlib-handle.ts)");

const GRAIN = data0.grain;
const ZERO = Buffer.alloc(GRAIN);
// The CRC-32 of a message followed by GRAIN zero bytes, from the message's CRC: the operator for
// GRAIN zero bytes (crc32-combine.ts, passed in) applied to the register, xor the CRC of the zeros.
const zeroOp = data0.zeroOp;
function gf2Times(mat: Uint32Array | number[], vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i];
  return sum >>> 0;
}
const zeroCrc = zlib.crc32(ZERO);
const appendZeros = (crc: number): number => (gf2Times(zeroOp, crc) ^ zeroCrc) >>> 0;
const scratch = Buffer.allocUnsafe(64 << 10);
const empty = Buffer.alloc(0);

interface Block { ab: ArrayBuffer; off: number; len: number }
interface SegmentError { message: string; code?: string }
interface Current {
  id: number;
  blocks: Block[];
  views: Buffer[];
  bi: number;
  filled: number;
  produced: number;
  last: boolean;
  err: SegmentError | null;
  whole: { window: number; clen: number; ulen: number; at: number } | null;
}
let cur: Current | null = null;

// libdeflate (src/sys/libdeflate.ts), where it loaded: a segment whose output fits in its first
// block is inflated in one call, faster than zlib. Its compressed bytes do not come in staging
// pieces: the main thread copies them straight from the network's chunks into this worker's
// gather buffer (shared memory; the 'end' message orders the writes before the read). libdeflate
// has no preset window, so the window goes before them as a stored block, and an empty final
// stored block after them (the segment ends on a block boundary); the output lands in the block
// with the window in the block's headroom just before it (SegmentInflater leaves room there).
const libdeflate = workerLibdeflate(data0.libdeflate).get();
const FINAL_EMPTY = Buffer.from([1, 0, 0, 0xff, 0xff]);
const crc32 = libdeflate !== null ? libdeflate.crc32 : zlib.crc32;
const gather = data0.gather !== undefined ? Buffer.from(data0.gather) : null;

function startWhole(c: Current, t: SegmentStart): void {
  c.whole = { window: t.window, clen: t.clen, ulen: t.ulen, at: t.window > 0 ? 5 + t.window : 0 };
  if (libdeflate === null || gather === null) { c.err = { message: 'libdeflate did not load in the inflate worker', code: 'LIBDEFLATE_FAILED' }; return; }
  if (t.window === 0) return;
  // the window: the prefix's DEFLATE (it ends on a sync flush) decoded into a stored block
  gather[0] = 0; gather.writeUInt16LE(t.window, 1); gather.writeUInt16LE(t.window ^ 0xffff, 3);
  const p = Buffer.concat([Buffer.from(t.prefix), FINAL_EMPTY]);
  const r = libdeflate.decompress(p, gather.subarray(5, 5 + t.window));
  if (r.result !== 0 || r.outUsed !== t.window || r.inUsed !== p.length) {
    c.err = { message: `the window before this segment does not decode to its ${t.window} bytes (damaged index)`, code: 'INDEX_DAMAGED' };
  }
}

function finishWhole(c: Current): void {
  const w = c.whole!;
  let end = w.at + w.clen;
  if (!c.last) { FINAL_EMPTY.copy(gather!, end); end += 5; }
  const input = gather!.subarray(0, end);
  const b = c.blocks[0];
  const out = Buffer.from(b.ab, b.off - w.window, w.window + w.ulen);
  const r = libdeflate!.decompress(input, out);
  if (r.result === 3) { c.err = { message: 'decodes to more bytes than the index says', code: 'SEGMENT_TOO_LONG' }; return; }
  if (r.result !== 0) { c.err = { message: 'invalid deflate data (or it stops before the segment does)', code: 'Z_DATA_ERROR' }; return; }
  if (r.inUsed !== end) { c.err = { message: `the deflate stream ends ${end - r.inUsed - (c.last ? 0 : 5)} bytes before this segment does`, code: 'SEGMENT_ENDS_EARLY' }; return; }
  c.produced = r.outUsed - w.window;
}

function start(t: SegmentStart): void {
  const c: Current = { id: t.id, blocks: t.blocks, views: t.blocks.map((b) => Buffer.from(b.ab, b.off, b.len)), bi: 0, filled: 0, produced: 0, last: t.last, err: null, whole: null };
  cur = c;
  if (t.whole) { startWhole(c, t); return; }
  inf!.reset();
  if (t.prefix.byteLength > 0) {
    const p = Buffer.from(t.prefix);
    const out = t.window <= scratch.length - 1 ? scratch : Buffer.allocUnsafe(t.window + 1);
    const ok = inf!.write(C.Z_NO_FLUSH, p, 0, p.length, out, 0, t.window + 1);
    if (!ok || inf!.inLeft !== 0 || t.window + 1 - inf!.outLeft !== t.window) {
      c.err = { message: `the window before this segment does not decode to its ${t.window} bytes (damaged index)`, code: 'INDEX_DAMAGED' };
    }
  }
}

function feed(c: Current, buf: Buffer): void {
  let off = 0;
  let avail = buf.length;
  while (avail > 0 && c.err === null) {
    if (c.bi >= c.views.length) { c.err = { message: 'decodes to more bytes than the index says', code: 'SEGMENT_TOO_LONG' }; return; }
    const blk = c.views[c.bi];
    const room = blk.length - c.filled;
    if (!inf!.write(C.Z_NO_FLUSH, buf, off, avail, blk, c.filled, room)) { c.err = inf!.error; return; }
    const outAfter = inf!.outLeft;
    const inAfter = inf!.inLeft;
    c.filled += room - outAfter;
    c.produced += room - outAfter;
    off += avail - inAfter;
    avail = inAfter;
    if (outAfter === 0) { c.bi++; c.filled = 0; continue; }
    if (avail > 0) { c.err = { message: `the deflate stream ends ${avail} bytes before this segment does`, code: 'SEGMENT_ENDS_EARLY' }; return; }
  }
}

function finish(c: Current): void {
  if (c.whole !== null) { if (c.err === null) finishWhole(c); }
  else if (c.err === null && c.last) {
    // the final block must have been decoded: Z_FINISH on no input says "unexpected end" otherwise
    if (!inf!.write(C.Z_FINISH, empty, 0, 0, scratch, 0, scratch.length)) c.err = inf!.error;
  }
  let crc = 0;
  const zeros: Uint8Array[] = [];
  if (c.err === null) {
    let left = c.produced;
    for (const v of c.views) {
      const n = Math.min(left, v.length);
      left -= n;
      const map = new Uint8Array(Math.ceil(v.length / GRAIN));
      for (let at = 0, g = 0; at < n; at += GRAIN, g++) {
        const end = Math.min(at + GRAIN, n);
        const piece = v.subarray(at, end);
        if (end - at === GRAIN && piece.equals(ZERO)) { map[g] = 1; crc = appendZeros(crc); }
        else crc = crc32(piece, crc);
      }
      zeros.push(map);
    }
  }
  const reply: SegmentReply = { op: 'done', id: c.id, produced: c.produced, crc, zeros, blocks: c.blocks, whole: c.whole !== null,
    error: c.err === null ? undefined : { message: String(c.err.message), code: c.err.code } };
  cur = null;
  port.postMessage(reply, c.blocks.map((b) => b.ab));
}

port.on('message', (m: SegmentRequest) => {
  exitIfAsked(m);
  if (m.op === 'start') { start(m); return; }
  // 'end' of a segment whose bytes the main thread put in the gather buffer
  if (m.op === 'end') { if (cur !== null && cur.id === m.id) finish(cur); return; }
  // 'in': a piece of the current segment's bytes; the staging buffer goes straight back
  if (cur !== null && cur.id === m.id && cur.err === null) feed(cur, Buffer.from(m.ab, 0, m.len));
  port.postMessage({ op: 'ack', ab: m.ab, len: m.len } satisfies SegmentReply, [m.ab]);
  if (m.end && cur !== null && cur.id === m.id) finish(cur);
});
