// A block decode worker (block-decode-pool.ts starts it, worker-start.ts says how): decodes one
// xz block or one bzip2 block per task, each wrapped as a standalone one-block stream
// (xz-container.ts wrapBlock, bzip2-bits.ts standaloneBlock) so that the library checks it in full
// (xz: block header, sizes, integrity check; bzip2: block CRC), and moves the output back in 1 MiB
// parts as they fill, all-zero parts as a count. An 'xz-place' task is decoded the same way, its
// compressed bytes read from a ring as they arrive (block-input-ring.ts), and written by this
// thread straight to the disk at the block's own offset (placeBlock below).
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import v8 from 'node:v8';
import vm from 'node:vm';
import { exitIfAsked } from './worker-exit.ts';
import { WorkerNativeLib, requireKoffi } from '../../sys/native-codec-worker.ts';
import { LZMA_FUNCTIONS, lzmaApi } from '../../sys/liblzma-api.ts';
import { BZ2_FUNCTIONS, bz2Api } from '../../sys/libbz2-api.ts';
import type { NativeStreamDecoder, StreamDecodeError } from '../../sys/stream-decoder.ts';
import { wrapBlock } from '../format/xz-container.ts';
import { standaloneBlock } from '../format/bzip2-bits.ts';
import { RingReader } from './block-input-ring.ts';
import { freeMovedBuffer } from './free-moved-buffer.ts';
import type { BlockPart, BlockReply, BlockRequest, BlockWorkerData, PlacedPart, XzPlaceTask } from './block-decode-pool.ts';

if (parentPort === null) throw new Error('block-decode-worker-entry.ts runs as a worker thread (block-decode-pool.ts)');
const port = parentPort;
const cfg = workerData as BlockWorkerData;
/** output part size: bzip2 blocks decode to at most ~900 kB apart from long runs; smaller parts
 *  also keep each worker's own buffers small */
const PART = 1 << 20;
const ZEROS = Buffer.alloc(PART);

// A task's input (moved here) is garbage once decoded: a scavenge after each task keeps the
// worker's external memory from piling up (codec-worker-entry.ts does the same).
let collect: ((o: { type: 'minor' }) => void) | null = null;
try {
  v8.setFlagsFromString('--expose-gc');
  collect = vm.runInNewContext('gc') as (o: { type: 'minor' }) => void;
} catch { collect = null; }

const lzma = new WorkerNativeLib(cfg.liblzma, LZMA_FUNCTIONS, lzmaApi);
const bz2 = new WorkerNativeLib(cfg.libbz2, BZ2_FUNCTIONS, bz2Api);

class Refused extends Error {
  readonly e: StreamDecodeError;
  constructor(e: StreamDecodeError) { super(e.message); this.e = e; }
}

/** Decodes `pieces` (one whole stream, in a row) into parts; the stream must end exactly at the
 *  end of the last piece. Each part is sent as soon as it is full (`send`), so a block's output
 *  does not pile up here while the block decodes. */
function decodeAll(dec: NativeStreamDecoder, pieces: Buffer[], send: (p: BlockPart) => void): void {
  let out = Buffer.allocUnsafeSlow(PART);
  let zeros = 0;
  const flushZeros = () => { if (zeros > 0) { send(zeros); zeros = 0; } };
  try {
    for (let i = 0; i < pieces.length; i++) {
      const input = pieces[i];
      const last = i === pieces.length - 1;
      let off = 0;
      for (;;) {
        const r = dec.step(input, off, input.length - off, out, 0, PART, last);
        const consumed = input.length - off - r.inLeft;
        off += consumed;
        const produced = PART - r.outLeft;
        if (produced > 0) {
          if (out.compare(ZEROS, 0, produced, 0, produced) === 0) zeros += produced; // a count; the buffer is reused
          else if (produced >= PART >> 1) {
            flushZeros();
            send(out.subarray(0, produced));
            out = Buffer.allocUnsafeSlow(PART);
          } else {
            flushZeros();
            const small = Buffer.allocUnsafeSlow(produced);
            out.copy(small, 0, 0, produced);
            send(small);
          }
        }
        if (r.error !== null) throw new Refused(r.error);
        if (r.ended) {
          if (!last || off !== input.length) throw new Refused({ message: 'data after the end of the block', kind: 'corrupt' });
          flushZeros();
          return;
        }
        // this piece is used up (the decoder has output room left): the next one
        if (r.outLeft > 0 && off === input.length && !last) break;
        if (consumed === 0 && produced === 0) throw new Refused({ message: 'the block ends early', kind: 'truncated' });
      }
    }
  } finally {
    dec.end();
  }
}

/** O_DIRECT's alignment (buffer address, offset, length): covers 512 and 4096 byte sectors. */
const ALIGN = 4096;
/** A placed block is decoded into chunks that end at multiples of CHUNK on the disk: each is
 *  written (O_DIRECT) while the next one decodes into the other buffer, or, all zeros, becomes
 *  part of a zero run. */
const CHUNK = 1 << 20;
const chunkBufs: Buffer[] = [];

/** Two buffers of CHUNK + ALIGN bytes whose addresses are ALIGN-aligned (reused for every placed
 *  block): one is written while the other fills. */
function placeBuffers(): Buffer[] {
  while (chunkBufs.length < 2) {
    const raw = Buffer.allocUnsafeSlow(CHUNK + 2 * ALIGN);
    const k = requireKoffi(cfg.liblzma!.koffi);
    const mis = Number((k.address(raw) as bigint) % BigInt(ALIGN));
    chunkBufs.push(raw.subarray(mis === 0 ? 0 : ALIGN - mis, (mis === 0 ? 0 : ALIGN - mis) + CHUNK + ALIGN));
  }
  return chunkBufs;
}

/** Writes buf[from, from + length) at `pos` in full, on libuv's threads (this thread decodes meanwhile). */
async function writeAll(fd: number, buf: Buffer, from: number, length: number, pos: number): Promise<void> {
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = await new Promise<number>((resolve, reject) => fs.write(fd, buf, from + done, length - done, pos + done, (e, written) => (e ? reject(e) : resolve(written))));
    } catch (err) {
      throw new WriteFailed(`writing ${length - done} bytes at byte ${pos + done} failed: ${(err as Error).message}`);
    }
    if (n <= 0) throw new WriteFailed(`short write at byte ${pos + done}`);
    done += n;
  }
}

class Stopped extends Error {}
class WriteFailed extends Error {}

/** Waits until the main thread lets writes start (the image's head was checked and the disk's
 *  boot area zeroed); throws once it said stop (another block failed, or the deploy ended). */
function awaitGate(gate: Int32Array): void {
  for (;;) {
    const v = Atomics.load(gate, 0);
    if (v === 1) return;
    if (v === 2) throw new Stopped('stopped');
    Atomics.wait(gate, 0, 0, 1000);
  }
}

/** Decodes one xz block and writes its output at [t.offset, t.offset + t.uncompressed): whole
 *  ALIGN pages straight to the disk, the rest (head, the partial pages at both ends, zero runs)
 *  to the main thread through `send`. The block's stream is checked in full by liblzma before the
 *  last chunk is written (its check follows the data): a corrupt block may have written earlier
 *  chunks, never reports success. */
async function placeBlock(t: XzPlaceTask, send: (p: PlacedPart) => void): Promise<void> {
  const api = lzma.get();
  if (api === null) throw new Error('liblzma did not load in the block worker');
  // the block's own bytes come through the ring as the main thread reads them; the stream header
  // before them and the index and footer after them are made here (wrapBlock)
  const [streamHeader, , trailer] = wrapBlock(Buffer.alloc(0), t.flags, t.unpadded, t.uncompressed);
  const ring = new RingReader(t.ring, t.length);
  const stopped = () => Atomics.load(t.gate, 0) === 2;
  /** 0: the stream header, 1: the block from the ring, 2: the index and footer */
  let stage = 0;
  let off = 0;
  const input = (): { buf: Buffer; off: number; len: number; last: boolean } => {
    if (stage === 0) return { buf: streamHeader, off, len: streamHeader.length - off, last: false };
    if (stage === 1) return { ...ring.view(), last: false };
    return { buf: trailer, off, len: trailer.length - off, last: true };
  };
  const consume = (n: number) => {
    if (stage === 1) ring.advance(n);
    else off += n;
    if (stage === 0 && off === streamHeader.length) { stage = 1; off = 0; }
    if (stage === 1 && ring.done) { stage = 2; off = 0; }
  };
  const dec = api.decoder(0);
  const bufs = placeBuffers();
  let which = 0;
  /** the write of the other buffer's chunk, running while this one decodes */
  let writing: Promise<void> | undefined;
  const end = t.offset + t.uncompressed;
  let zero: { at: number; length: number } | undefined;
  const flushZero = () => { if (zero !== undefined) { send({ kind: 'zero', ...zero }); zero = undefined; } };
  let ended = false;
  let pos = t.offset;
  try {
    while (!ended) {
      if (stopped()) throw new Stopped('stopped');
      const buf = bufs[which];
      // the chunk [pos, chunkEnd) sits in buf at pos % ALIGN, so absolute pages are aligned in buf
      const chunkEnd = Math.min(end, Math.floor(pos / CHUNK) * CHUNK + CHUNK);
      const shift = pos % ALIGN;
      // at the block's end, room to see that liblzma ends the stream (it refuses more output)
      const room = chunkEnd > pos ? chunkEnd - pos : ALIGN;
      let fill = 0;
      while (fill < room && !ended) {
        const v = input();
        if (v.len === 0 && !v.last) {
          // the block's next bytes are still on their way
          if (!(await ring.more(stopped))) throw new Stopped('stopped');
          continue;
        }
        const r = dec.step(v.buf, v.off, v.len, buf, shift + fill, room - fill, v.last);
        const consumed = v.len - r.inLeft;
        const produced = room - fill - r.outLeft;
        consume(consumed);
        fill += produced;
        if (r.error !== null) throw new Refused(r.error);
        if (r.ended) {
          if (!v.last || consumed !== v.len) throw new Refused({ message: 'data after the end of the block', kind: 'corrupt' });
          ended = true;
          break;
        }
        if (consumed === v.len && !v.last) continue;
        if (consumed === 0 && produced === 0) throw new Refused({ message: 'the block ends early', kind: 'truncated' });
      }
      if (pos + fill > end) throw new Refused({ message: 'the block decodes to more than its header says', kind: 'corrupt' });
      if (fill === 0) continue;
      const write = placeChunk(t, buf, shift, pos, pos + fill, send, (at, length) => {
        if (zero !== undefined && zero.at + zero.length === at) zero.length += length;
        else { flushZero(); zero = { at, length }; }
      }, flushZero);
      pos += fill;
      if (write !== undefined) {
        // the other buffer is filled next: its write must be done
        const before = writing;
        writing = undefined;
        await before;
        writing = write;
        which ^= 1;
      }
    }
    if (pos !== end) throw new Refused({ message: `the block decodes to ${pos - t.offset} bytes, not the ${t.uncompressed} its header says`, kind: 'corrupt' });
    flushZero();
    const last = writing;
    writing = undefined;
    await last;
  } catch (e) {
    // the main thread must not wait for room in a ring nobody reads any more
    if (!ring.done) ring.stop();
    throw e;
  } finally {
    dec.end();
    // none of this block's writes may land after it reported (a failure included)
    await writing?.catch(() => {});
  }
}

/** One decoded chunk [a, b) (at buf[shift]) to where it goes; the write of its whole pages, when
 *  it has some that are not zeros (buf is not to be touched until it is done). */
function placeChunk(t: XzPlaceTask, buf: Buffer, shift: number, a: number, b: number, send: (p: PlacedPart) => void,
  addZero: (at: number, length: number) => void, flushZero: () => void): Promise<void> | undefined {
  const at = (x: number) => x - a + shift;
  const copy = (from: number, to: number) => { const c = Buffer.allocUnsafeSlow(to - from); buf.copy(c, 0, at(from), at(to)); return c; };
  if (a < t.holdBack) {
    const to = Math.min(b, t.holdBack);
    send({ kind: 'head', at: a, bytes: copy(a, to) });
    a = to;
    if (a >= b) return undefined;
  }
  const s = Math.ceil(a / ALIGN) * ALIGN;
  const e = Math.floor(b / ALIGN) * ALIGN;
  if (s >= e) { send({ kind: 'edge', at: a, bytes: copy(a, b) }); return undefined; }
  if (a < s) send({ kind: 'edge', at: a, bytes: copy(a, s) });
  let write: Promise<void> | undefined;
  if (t.zeroRuns && buf.compare(ZEROS, 0, e - s, at(s), at(e)) === 0) addZero(s, e - s);
  else {
    flushZero();
    awaitGate(t.gate);
    write = writeAll(t.fd, buf, at(s), e - s, s);
    write.catch(() => {}); // (awaited by placeBlock; a failure meanwhile is not unhandled)
  }
  if (e < b) send({ kind: 'edge', at: e, bytes: copy(e, b) });
  return write;
}

function run(t: Exclude<BlockRequest, XzPlaceTask & { id: number }>, send: (p: BlockPart) => void): void {
  const data = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (t.op === 'xz') {
    const api = lzma.get();
    if (api === null) throw new Error('liblzma did not load in the block worker');
    return decodeAll(api.decoder(0), wrapBlock(data, t.flags, t.unpadded, t.uncompressed), send);
  }
  const api = bz2.get();
  if (api === null) throw new Error('libbz2 did not load in the block worker');
  return decodeAll(api.decoder(), [standaloneBlock(data, t.bit, t.bits, t.level, t.crc)], send);
}

/** Frees a task's compressed input now that it is decoded, when it was moved here whole: waiting
 *  for this thread's GC let blocks that had been promoted to the old generation pile up, tens of
 *  MiB of a deploy's peak RSS with xz -T0 -6's blocks. */
function release(data: Uint8Array): void {
  if (data.buffer.byteLength === data.byteLength) freeMovedBuffer(data);
}

port.on('message', async (m: BlockRequest | null) => {
  exitIfAsked(m);
  let t = m;
  m = null;
  const id = t!.id;
  if (t!.op === 'xz-place') {
    const key = t!.key;
    try {
      await placeBlock(t!, (placed) => port.postMessage({ id, key, placed, more: true } satisfies BlockReply, placed.kind === 'zero' ? [] : [placed.bytes.buffer as ArrayBuffer]));
      port.postMessage({ id, key } satisfies BlockReply);
    } catch (e) {
      if (e instanceof WriteFailed) port.postMessage({ id, key, writeError: e.message } satisfies BlockReply);
      else {
        const error: StreamDecodeError = e instanceof Refused ? e.e : { message: String((e as Error)?.message ?? e), kind: 'limits' };
        port.postMessage({ id, key, error } satisfies BlockReply);
      }
    }
    t = null;
    collect?.({ type: 'minor' });
    return;
  }
  try {
    // parts go as they come (moved, not copied); 'done' ends the block
    run(t!, (part) => port.postMessage({ id, part, more: true } satisfies BlockReply, typeof part === 'number' ? [] : [part.buffer as ArrayBuffer]));
    port.postMessage({ id } satisfies BlockReply);
  } catch (e) {
    const error: StreamDecodeError = e instanceof Refused ? e.e : { message: String((e as Error)?.message ?? e), kind: 'limits' };
    port.postMessage({ id, error } satisfies BlockReply);
  }
  release(t!.data);
  t = null;
  collect?.({ type: 'minor' });
});
