// Deploy's gzip decoder on every core, for images that come with an access-point index
// (gzip-index.ts): a Transform from the image as served (in order) to the disk's bytes (in order).
// The image's deflate data is cut at the index's points into segments (4 MiB of output each);
// each segment goes to a free worker thread: first the window before it (as its prefix), then its
// compressed bytes as they arrive, in 1 MiB staging buffers. The worker inflates them straight
// into O_DIRECT-aligned write blocks, as decode-worker.ts does, and hands the blocks back when the
// segment is done; they are emitted in order, lent to the writer. Buffers travel between the
// threads (moved, never copied) and come back: no allocation per segment, no garbage.
//
// Every check gunzip makes is made: each segment must consume exactly its bytes and produce
// exactly its length, its CRC-32 must be the index's, the CRC-32s combined must be the trailer's
// and the length its ISIZE; the last segment must end the deflate stream. Deploy then compares
// the sha256 of everything served with the one the index recorded.
//
// The workers also note which 64 KiB stretches of their output are all zeros (OS images are
// mostly free space): those are not run through crc32() (the CRC of a zero stretch is a fixed
// linear map, crc32_combine's) and the writer plans zero runs from the map instead of scanning
// the block again (zeroruns.ts).
//
// Segments the index flags as all zeros (free space, most of an OS image) are not inflated at all:
// their compressed bytes are only hashed (deploy's sha256 of everything served) and they go to the
// writer as zero runs. The flag counts only together with a CRC-32 that is that of zeros, and the
// combined CRC-32 must still match the image's own trailer.
//
// Memory: the blocks (one segment's worth per worker, plus one), a few staging buffers.
import { Transform, type TransformCallback } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import zlib from 'node:zlib';
import { alignedBuffer } from '../sink/target.ts';
import { lendBlock } from '../sink/block-loan.ts';
import { ByteQueue } from '../byte-queue.ts';
import { crc32Combine, zerosOperator } from '../format/crc32-combine.ts';
import { createGcPacer } from '../sink/gc-pacer.ts';
import { FLAG_ZEROS, gzipHeaderLength, type GzipIndexHeader, type GzipIndexRecord } from '../format/gzip-index.ts';
import { GzipIndexError, type GzipIndexReader } from '../source/gzip-index-source.ts';
import { DEFAULT_GRANULARITY, markZeroGrains } from '../sink/zeroruns.ts';
import { endWorker } from './worker-exit.ts';
import { startWorker } from './worker-start.ts';
import { LIBDEFLATE } from '../../sys/libdeflate.ts';
import type { NativeLibForWorkers } from '../../sys/native-codec-lib.ts';

/** What each segment worker (segment-worker-entry.ts) is started with. */
export interface SegmentWorkerData {
  /** bytes per zero-map grain */
  grain: number;
  /** crc32-combine.ts's operator for `grain` zero bytes */
  zeroOp: Uint32Array | number[];
  libdeflate: NativeLibForWorkers | undefined;
  /** with libdeflate: memory shared with the main thread, where a whole segment's bytes are put */
  gather: SharedArrayBuffer | undefined;
}

/** A segment for a worker: its blocks (moved), the window's deflated prefix (moved), and whether
 *  its bytes come whole in the gather buffer (then 'end') or in staging pieces ('in'). */
export interface SegmentStart {
  op: 'start';
  id: number;
  prefix: ArrayBuffer;
  window: number;
  blocks: Block[];
  last: boolean;
  whole: boolean;
  clen: number;
  ulen: number;
}

/** Main thread -> segment worker. */
export type SegmentRequest =
  | SegmentStart
  | { op: 'in'; id: number; ab: ArrayBuffer; len: number; end: boolean }
  | { op: 'end'; id: number };

function send(w: Worker, m: SegmentRequest, transfer: ArrayBuffer[] = []): void {
  w.postMessage(m, transfer);
}

function corrupt(message: string, code?: string): Error {
  const e = new Error(message) as Error & { code?: string };
  e.name = 'SegmentCorrupt';
  if (code !== undefined) e.code = code;
  return e;
}

export interface Block { ab: ArrayBuffer; off: number; len: number }
interface Slot {
  rec: GzipIndexRecord;
  index: number;
  /** undefined: an all-zero segment, not inflated */
  worker: Worker | undefined;
  done: boolean;
  err?: Error;
  blocks: Block[];
  zeros?: Uint8Array[];
  produced?: number;
  crc?: number;
}

/** Segment worker -> main thread: a staging buffer given back, or a segment done (its blocks
 *  back, with what it produced, its CRC-32 and zero maps, or its error). */
export type SegmentReply =
  | { op: 'ack'; ab: ArrayBuffer; len: number }
  | {
    op: 'done';
    id: number;
    produced: number;
    crc: number;
    zeros: Uint8Array[];
    blocks: Block[];
    /** inflated in one libdeflate call */
    whole: boolean;
    error?: { message: string; code?: string };
  };

export interface SegmentInflaterOptions {
  index: GzipIndexReader;
  workers: number;
  /** bytes per write block (the writer's; 4 MiB) */
  blockSize?: number;
  /** null: node:zlib only (default: libdeflate where it loads) */
  libdeflate?: NativeLibForWorkers | null;
}

const YOUNG_MB = 4;
const STAGING = 1 << 20;
/** compressed bytes posted to the workers and not yet decoded, at most */
const MAX_UNACKED = 4 << 20;

export class SegmentInflater extends Transform {
  /** input bytes consumed (header, segments, trailer), as node:zlib's bytesWritten */
  bytesWritten = 0;
  /** segments decoded */
  segments = 0;
  readonly workerCount: number;
  /** the workers' inflate: libdeflate (segments that fit a block, in one call) or node:zlib */
  readonly inflate: 'libdeflate' | 'node:zlib';
  private readonly headroom: number;
  private readonly index: GzipIndexReader;
  private readonly header: GzipIndexHeader;
  private readonly blockSize: number;
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly freeBlocks: Block[] = [];
  private readonly spare: ArrayBuffer[] = [];
  private readonly slots: Slot[] = [];
  private readonly byId = new Map<number, Slot>();
  /** the gzip header, then the trailer: small pieces gathered across chunks */
  private readonly small = new ByteQueue();
  private phase: 'header' | 'segments' | 'trailer' | 'done' = 'header';
  /** the segment whose bytes are arriving: its slot and the bytes still to come (skip: only hashed) */
  private feeding: { slot: Slot; left: number; skip: boolean; gather?: Buffer; at?: number } | undefined;
  /** per worker, with libdeflate: the memory (shared with it) its next whole segment is copied into */
  private readonly gathers = new Map<Worker, Buffer>();
  private readonly gatherBytes: number;
  /** segments written as zero runs without inflating them */
  zeroSegments = 0;
  /** segments libdeflate inflated (in one call each); the others went through node:zlib */
  libdeflateSegments = 0;
  private staging: Buffer;
  private staged = 0;
  private unacked = 0;
  private dispatched = 0;
  /** uncompressed bytes of the segments dispatched */
  private uDispatched = 0;
  private crc = 0;
  private total = 0;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  /** a _transform or _flush is running: it sees a failure itself */
  private busy = false;
  private shut = false;
  /** the network's chunks are copied into staging buffers and die young: collect them every 2 MiB
   *  (less peak RSS than every 8 MiB for little CPU; README, Performance) */
  private readonly pace = createGcPacer(2 << 20);

  constructor(o: SegmentInflaterOptions) {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
    this.index = o.index;
    this.header = o.index.header;
    this.blockSize = o.blockSize ?? 4 << 20;
    if (this.header.spacing % this.blockSize !== 0) throw new RangeError(`index spacing ${this.header.spacing} is not a multiple of the block size ${this.blockSize}`);
    this.workerCount = Math.max(1, o.workers);
    const perSegment = Math.ceil(this.header.maxSegment / this.blockSize);
    // every worker busy with a segment, and one block more for the writer to hold while it writes
    // it (measured: more blocks gain nothing on 2 cores, and each costs 4 MiB of RSS)
    const blocks = this.workerCount * perSegment + 1;
    const libdeflate = o.libdeflate === undefined ? LIBDEFLATE.forWorkers() : o.libdeflate ?? undefined;
    this.inflate = libdeflate !== undefined ? 'libdeflate' : 'node:zlib';
    // libdeflate writes the window just before the segment's output: each block has room for it
    // in front (a whole number of pages, so the block itself stays aligned for O_DIRECT)
    this.headroom = libdeflate !== undefined ? Math.ceil(this.header.window / 4096) * 4096 : 0;
    for (let i = 0; i < blocks; i++) {
      const b = alignedBuffer(this.headroom + this.blockSize);
      this.freeBlocks.push({ ab: b.buffer as ArrayBuffer, off: b.byteOffset + this.headroom, len: this.blockSize });
    }
    this.staging = Buffer.allocUnsafeSlow(STAGING);
    // a whole segment's input: the window as a stored block, the bytes (at most a block's worth
    // plus DEFLATE's worst-case growth), the empty final block; its pages are touched only as
    // bytes arrive
    this.gatherBytes = libdeflate !== undefined ? 5 + this.header.window + this.blockSize + (this.blockSize >> 10) + 64 : 0;
    for (let i = 0; i < this.workerCount; i++) {
      const gather = libdeflate !== undefined ? new SharedArrayBuffer(this.gatherBytes) : undefined;
      const workerData: SegmentWorkerData = { grain: DEFAULT_GRANULARITY, zeroOp: zerosOperator(DEFAULT_GRANULARITY), libdeflate, gather };
      const w = startWorker(new URL('./segment-worker-entry.ts', import.meta.url), {
        name: `booty-inflate-${i}`, workerData,
        // the worker keeps almost nothing alive: a small young generation keeps its heap small
        resourceLimits: { maxYoungGenerationSizeMb: YOUNG_MB },
      });
      w.on('message', (m: SegmentReply) => this.onReply(w, m));
      w.on('error', (e: Error) => this.fail(e));
      w.on('exit', (code) => { if (!this.shut) this.fail(new Error(`inflate worker exited (${code})`)); });
      this.workers.push(w);
      this.idle.push(w);
      if (gather !== undefined) this.gathers.set(w, Buffer.from(gather));
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.pace(chunk.length);
    this.run(() => this.takeChunk(chunk)).then(() => cb(), (e: Error) => cb(e));
  }

  override _flush(cb: TransformCallback): void {
    this.run(() => this.finishInput()).then(() => { this.shutdown(); cb(); }, (e: Error) => cb(e));
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.shutdown();
    cb(err);
  }

  private async run(f: () => Promise<void>): Promise<void> {
    this.busy = true;
    try { await f(); } finally { this.busy = false; }
  }

  private shutdown(): void {
    if (this.shut) return;
    this.shut = true;
    // (never terminate(): a thread stopped inside koffi aborts the process; worker-exit.ts)
    for (const w of this.workers) void endWorker(w);
    this.index.close();
  }

  private fail(e: Error): void {
    if (this.failure !== undefined) return;
    this.failure = e;
    if (this.wake !== undefined) this.poke();
    // nobody waiting: fail the stream now rather than at its next chunk
    else if (!this.busy && !this.destroyed) this.destroy(e);
  }

  private poke(): void {
    const f = this.wake;
    this.wake = undefined;
    f?.();
  }

  /** Waits for a worker's reply or a block coming back, whichever comes first. */
  private async changed(): Promise<void> {
    await new Promise<void>((resolve) => { this.wake = resolve; });
    if (this.failure) throw this.failure;
  }

  /** Takes one chunk of the image: header bytes, segment bytes (to their worker), trailer bytes. */
  private async takeChunk(chunk: Buffer): Promise<void> {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.failure) throw this.failure;
      switch (this.phase) {
        case 'header': {
          const n = Math.min(this.header.deflateStart - this.small.length, chunk.length - pos);
          this.small.push(chunk.subarray(pos, pos + n));
          pos += n;
          if (this.small.length === this.header.deflateStart) {
            const head = this.small.take(this.small.length);
            const len = gzipHeaderLength(head);
            if (len !== this.header.deflateStart) throw new GzipIndexError(`the index says the gzip header is ${this.header.deflateStart} bytes, the image's is ${typeof len === 'number' ? len : 'not'} (the index is not this image's)`);
            this.bytesWritten += head.length;
            this.phase = 'segments';
          }
          break;
        }
        case 'segments': {
          if (this.feeding === undefined) await this.startSegment();
          const f = this.feeding!;
          if (f.skip) {
            const n = Math.min(f.left, chunk.length - pos);
            pos += n;
            f.left -= n;
            this.bytesWritten += n;
          } else if (f.gather !== undefined) {
            const n = Math.min(f.left, chunk.length - pos);
            chunk.copy(f.gather, f.at, pos, pos + n);
            f.at! += n;
            pos += n;
            f.left -= n;
            this.bytesWritten += n;
            if (f.left === 0) send(f.slot.worker!, { op: 'end', id: f.slot.index });
          } else {
            const n = Math.min(f.left, chunk.length - pos, STAGING - this.staged);
            chunk.copy(this.staging, this.staged, pos, pos + n);
            this.staged += n;
            pos += n;
            f.left -= n;
            this.bytesWritten += n;
            if (f.left === 0 || this.staged === STAGING) this.post(f.slot, f.left === 0);
          }
          if (f.left === 0) {
            this.feeding = undefined;
            if (this.dispatched === this.header.count) this.phase = 'trailer';
          }
          while (this.unacked >= MAX_UNACKED) await this.changed();
          break;
        }
        case 'trailer': {
          const n = Math.min(8 - this.small.length, chunk.length - pos);
          this.small.push(chunk.subarray(pos, pos + n));
          pos += n;
          if (this.small.length === 8) await this.checkTrailer();
          break;
        }
        case 'done':
          // bytes after the member: not consumed; deploy counts and refuses them (trailingBytes)
          return;
      }
    }
  }

  /** Input ended: everything must have arrived; waits for the last segments. */
  private async finishInput(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.phase === 'done') return;
    // a segment cut short never finishes: the image is truncated; else the segments sent may
    // hold an earlier, truer error than the missing trailer
    if (this.feeding === undefined) {
      while (this.slots.length > 0) {
        this.emitReady();
        if (this.failure) throw this.failure;
        if (this.slots.length > 0) await this.changed();
      }
    }
    throw truncated();
  }

  /** Reads the next record and gives its segment to a free worker (waiting for one, and for blocks). */
  private async startSegment(): Promise<void> {
    let next;
    try { next = await this.index.next(); } catch (e) {
      throw new GzipIndexError(`reading the gzip index failed: ${(e as Error).message}`);
    }
    const { rec, prefix } = next;
    if (rec.cOff !== this.bytesWritten || rec.uOff !== this.uDispatched || rec.uLen > this.header.maxSegment || rec.uLen === 0 || (rec.uOff > 0) !== (prefix.length > 0)) {
      throw new GzipIndexError(`gzip index record ${this.dispatched} is out of sequence (damaged index)`);
    }
    const last = this.dispatched === this.header.count - 1;
    if ((rec.flags & FLAG_ZEROS) !== 0 && !last) {
      // all zeros by the index: no worker, no block (the last segment is always inflated: it must end the stream)
      if (rec.crc !== zeroCrc(rec.uLen)) throw new GzipIndexError(`gzip index record ${this.dispatched} says all zeros but its CRC-32 is not that of zeros (damaged index)`);
      const id = this.dispatched++;
      this.uDispatched += rec.uLen;
      this.slots.push({ rec, index: id, worker: undefined, done: true, blocks: [], produced: rec.uLen, crc: rec.crc });
      this.feeding = { slot: this.slots[this.slots.length - 1], left: rec.cLen, skip: true };
      this.zeroSegments++;
      // (written now, if every segment before it is: a long run of zeros goes to the writer as it comes)
      this.emitReady();
      return;
    }
    const need = Math.ceil(rec.uLen / this.blockSize);
    for (;;) {
      this.emitReady();
      if (this.failure) throw this.failure;
      if (this.idle.length > 0 && this.freeBlocks.length >= need) break;
      await this.changed();
    }
    const worker = this.idle.pop()!;
    const blocks = this.freeBlocks.splice(this.freeBlocks.length - need, need);
    const id = this.dispatched++;
    this.uDispatched += rec.uLen;
    const slot: Slot = { rec, index: id, worker, done: false, blocks };
    this.slots.push(slot);
    this.byId.set(id, slot);
    const p = new Uint8Array(prefix);
    const window = Math.min(this.header.window, rec.uOff);
    // libdeflate takes the segment whole when its output fits its block (pigz's segments all do)
    const at = window > 0 ? 5 + window : 0;
    const gather = rec.uLen <= this.blockSize && window <= this.headroom && at + rec.cLen + 5 <= this.gatherBytes ? this.gathers.get(worker) : undefined;
    send(worker, {
      op: 'start', id, prefix: p.buffer, window, blocks, last, whole: gather !== undefined, clen: rec.cLen, ulen: rec.uLen,
    }, [p.buffer, ...blocks.map((b) => b.ab)]);
    this.feeding = { slot, left: rec.cLen, skip: false, gather, at };
  }

  /** Sends the staged bytes to the segment's worker (the staging buffer moves; a spare replaces it). */
  private post(slot: Slot, end: boolean): void {
    const ab = this.staging.buffer as ArrayBuffer;
    send(slot.worker!, { op: 'in', id: slot.index, ab, len: this.staged, end }, [ab]);
    this.unacked += this.staged;
    this.staging = this.spare.length > 0 ? Buffer.from(this.spare.pop()!) : Buffer.allocUnsafeSlow(STAGING);
    this.staged = 0;
  }

  private async checkTrailer(): Promise<void> {
    while (this.slots.length > 0) {
      this.emitReady();
      if (this.failure) throw this.failure;
      if (this.slots.length > 0) await this.changed();
    }
    const t = this.small.take(8);
    const crc = t.readUInt32LE(0);
    const isize = t.readUInt32LE(4);
    if (crc !== this.crc) throw corrupt(`incorrect data check (CRC-32 of the segments ${this.crc.toString(16)}, trailer says ${crc.toString(16)})`);
    if (isize !== this.total % 2 ** 32) throw corrupt(`incorrect length check (${this.total} bytes decoded, trailer says ${isize} mod 2^32)`);
    this.bytesWritten += 8;
    this.phase = 'done';
  }

  private onReply(w: Worker, m: SegmentReply): void {
    if (m.op === 'ack') {
      this.unacked -= m.len;
      if (m.ab.byteLength === STAGING) this.spare.push(m.ab);
      this.poke();
      return;
    }
    const slot = this.byId.get(m.id);
    if (slot === undefined) return;
    this.byId.delete(m.id);
    this.idle.push(w);
    slot.blocks = m.blocks;
    slot.done = true;
    if (m.whole) this.libdeflateSegments++;
    if (m.error !== undefined) {
      const where = `gzip segment ${slot.index} (image bytes ${slot.rec.cOff}-${slot.rec.cOff + slot.rec.cLen}, disk offset ${slot.rec.uOff})`;
      if (m.error.code === 'INDEX_DAMAGED') slot.err = new GzipIndexError(`${where}: ${m.error.message}`);
      else slot.err = corrupt(`${where}: ${m.error.message}`, m.error.code);
    } else {
      slot.produced = m.produced;
      slot.crc = m.crc;
      slot.zeros = m.zeros;
    }
    this.emitReady();
    this.poke();
  }

  /** Emits finished segments at the head, in order. */
  private emitReady(): void {
    while (this.slots.length > 0 && this.slots[0].done && this.failure === undefined) {
      const slot = this.slots.shift()!;
      const rec = slot.rec;
      const where = `gzip segment ${slot.index} (image bytes ${rec.cOff}-${rec.cOff + rec.cLen}, disk offset ${rec.uOff})`;
      if (slot.err === undefined && slot.produced !== rec.uLen) slot.err = corrupt(`${where} decodes to ${slot.produced} bytes, the index says ${rec.uLen}`);
      if (slot.err === undefined && slot.crc !== rec.crc) slot.err = corrupt(`${where}: incorrect data check (CRC-32 ${(slot.crc! >>> 0).toString(16)}, the index says ${rec.crc.toString(16)})`);
      if (slot.err !== undefined) {
        for (const b of slot.blocks) this.freeBlocks.push({ ab: b.ab, off: b.off, len: b.len });
        this.fail(slot.err);
        return;
      }
      this.crc = crc32Combine(this.crc, slot.crc!, rec.uLen);
      this.total += rec.uLen;
      this.segments++;
      if (slot.worker === undefined) { this.emitZeros(rec.uLen); continue; }
      let left = rec.uLen;
      slot.blocks.forEach((b, i) => {
        const block: Block = { ab: b.ab, off: b.off, len: b.len };
        const n = Math.min(left, b.len);
        left -= n;
        if (n === 0) { this.giveBack(block); return; }
        const view = Buffer.from(b.ab, b.off, n);
        if (slot.zeros?.[i] !== undefined) markZeroGrains(view, slot.zeros[i]);
        this.push(lendBlock(view, () => this.giveBack(block)));
      });
    }
  }

  /** An all-zero segment: views of one shared zero block, marked all-zero (the writer plans zero
   *  runs from the mark and never reads them; with zero runs off it writes them, so they are real,
   *  aligned zeros: calloc'd pages the kernel maps to its zero page, costing no memory). */
  private emitZeros(length: number): void {
    const zeros = zeroBlock(this.blockSize);
    const grains = Math.ceil(this.blockSize / DEFAULT_GRANULARITY);
    for (let left = length; left > 0;) {
      const n = Math.min(left, this.blockSize);
      left -= n;
      const view = zeros.subarray(0, n);
      markZeroGrains(view, new Uint8Array(grains).fill(1));
      this.push(lendBlock(view, () => {}));
    }
  }

  private giveBack(b: Block): void {
    if (this.shut) return;
    this.freeBlocks.push(b);
    this.poke();
  }
}

let zeroBlockCache: Buffer | undefined;
function zeroBlock(size: number): Buffer {
  if (zeroBlockCache === undefined || zeroBlockCache.length < size) zeroBlockCache = alignedBuffer(size, true);
  return zeroBlockCache;
}

const zeroCrcs = new Map<number, number>();
function zeroCrc(length: number): number {
  let c = zeroCrcs.get(length);
  if (c === undefined) {
    c = zlib.crc32(Buffer.alloc(length));
    zeroCrcs.set(length, c);
  }
  return c;
}

function truncated(): Error {
  const e = new Error('unexpected end of file') as Error & { code?: string };
  e.code = 'Z_BUF_ERROR';
  return e;
}
