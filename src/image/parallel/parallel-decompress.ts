// Deploy's decoder on every core: a Transform from the compressed image (as served, in order) to
// the disk's bytes (in order). While bytes stream in, it cuts them into frames by their headers
// alone (frame-format.ts: booty's gzip members say their length, zstd frames with a content size
// are walked block by block), decodes up to `maxInflight` frames at once on the codec pool and
// emits each frame's bytes in order. Every check a streaming decoder makes is made here too:
// CRC-32 and ISIZE per gzip member, the checksum and content size per zstd frame, no data left in a
// frame after its end, and the frame index, when the image carries one, against the frames seen.
//
// Anything that is not such a frame (a gzip member from pigz, a zstd frame without a content size
// or larger than `maxFrame`, garbage, a truncated tail) is handed, from that frame boundary on, to
// the same streaming decoder deploy used before (decompress.ts): stock images decode as before,
// with the same errors, and `bytesWritten` (input bytes consumed) keeps trailingBytes() right.
//
// Memory: the frame being received, plus at most `maxInflight` frames decoding or waiting.
import { Transform, type TransformCallback } from 'node:stream';
import { ByteQueue } from '../byte-queue.ts';
import { CodecError, type CodecPool } from './codec-pool.ts';
import { createGcPacer } from '../sink/gc-pacer.ts';
import { createDecompressor } from '../format/decompress.ts';
import { EMPTY_DEFLATE, GZIP_TRAILER, ZSTD_INDEX_MAGIC, ZstdFrameWalker, parseBootyGzipHeader, parseZstdFrameStart } from '../format/frame-format.ts';
import { FrameList, decodeIndexPayload, indexMismatch, type FrameIndex, type FramedFormat } from '../format/frame-index.ts';

/** Largest frame (uncompressed) decoded in parallel; larger ones stream: a frame is only decoded
 *  once it is all in, so one big frame gains nothing from a worker and would cost its size in memory. */
export const DEFAULT_MAX_FRAME = 8 << 20;
/** Frames whose compressed form is at most this long are compared with a known all-zero frame. */
const SMALL_FRAME = 64 << 10;
const MAX_INDEX_FRAME = 16 << 20;

type ZlibStream = Transform & { bytesWritten: number };

interface Slot { out?: Buffer; err?: Error; done: Promise<void>; size: number; compressed: number }

/** Thrown for a frame that fails a check; worded for describeDecodeError(). */
function corrupt(message: string): Error {
  const e = new Error(message);
  e.name = 'FrameCorrupt';
  return e;
}

export interface ParallelDecompressOptions {
  format: FramedFormat;
  pool: CodecPool;
  /** frames decoding or waiting at once (default one per worker plus one, at most 16) */
  maxInflight?: number;
  maxFrame?: number;
}

export class ParallelDecompressor extends Transform {
  readonly format: FramedFormat;
  /** frames decoded on the pool (compressed and uncompressed length of each) */
  readonly frames = new FrameList();
  /** frames that were recognised as all zeros without decoding */
  zeroFrames = 0;
  /** the frame index the image carried, once read */
  index: FrameIndex | undefined;
  /** input offset from which the streaming decoder took over, if it did */
  streamedFrom: number | undefined;
  private readonly pool: CodecPool;
  /** frames wait in slots long enough to be promoted: a full GC every 64 MiB frees them */
  private readonly pace = createGcPacer(64 << 20, 'major');
  private readonly maxInflight: number;
  private readonly maxFrame: number;
  private readonly q = new ByteQueue();
  private readonly slots: Slot[] = [];
  /** input bytes consumed by frames (decoded, skipped or index) */
  private consumed = 0;
  private skipLeft = 0;
  private walker: ZstdFrameWalker | undefined;
  private walkerSize = 0;
  private indexPieces: Buffer[] = [];
  /** bytes after the last frame that start no frame: ignored (not consumed), as zlib does */
  private stopped = false;
  private inner: ZlibStream | undefined;
  private innerError: Error | undefined;
  private innerFailed: Promise<never> | undefined;
  /** a compressed all-zero frame seen before, and the zeros it decodes to */
  private zeroFrame: { frame: Buffer; size: number } | undefined;
  private zeroOut: Buffer | undefined;

  constructor(o: ParallelDecompressOptions) {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
    this.format = o.format;
    this.pool = o.pool;
    this.maxInflight = Math.max(2, o.maxInflight ?? Math.min(o.pool.size + 1, 16));
    this.maxFrame = o.maxFrame ?? DEFAULT_MAX_FRAME;
  }

  /** Input bytes consumed (for trailingBytes(): what the decoders never took is not image). */
  get bytesWritten(): number {
    return this.consumed + (this.inner?.bytesWritten ?? 0);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.accept(chunk).then(() => cb(), (e: Error) => cb(e));
  }

  override _flush(cb: TransformCallback): void {
    this.finish().then(() => cb(), (e: Error) => cb(e));
  }

  override _read(size: number): void {
    this.inner?.resume();
    super._read(size);
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.inner?.destroy();
    cb(err);
  }

  private async accept(chunk: Buffer): Promise<void> {
    if (this.inner !== undefined) return this.feedInner([chunk]);
    if (this.stopped) return;
    this.q.push(chunk);
    for (;;) {
      if (this.skipLeft > 0) {
        const n = Math.min(this.skipLeft, this.q.length);
        this.q.skip(n);
        this.consumed += n;
        this.skipLeft -= n;
        if (this.skipLeft > 0) return;
      }
      const step = this.format === 'gzip' ? this.nextGzip() : this.nextZstd();
      if (step === 'more') return;
      if (step === 'stop') {
        // not the start of a frame after the last one: trailing bytes, which deploy counts
        // (trailingBytes) and refuses, as it does behind the streaming decoders
        this.stopped = true;
        this.q.drain();
        return;
      }
      if (step === 'stream') {
        await this.switchToStream();
        return;
      }
      if (step !== 'next') await this.dispatch(step);
    }
  }

  private async finish(): Promise<void> {
    if (this.inner === undefined && this.skipLeft > 0) {
      throw corrupt(`unexpected end of file: the ${this.format} stream ends inside a skippable frame (${this.skipLeft} bytes missing)`);
    }
    // a few bytes after the last frame that cannot begin one: trailing bytes (see 'stop')
    if (this.inner === undefined && this.consumed > 0 && this.q.length > 0 && !this.couldStartFrame()) {
      this.stopped = true;
      this.q.drain();
    }
    // a frame cut short: the streaming decoder says so in its own words
    if (this.inner === undefined && !this.stopped && this.q.length > 0) await this.switchToStream();
    while (this.slots.length > 0) await this.emitHead();
    if (this.inner !== undefined) {
      const inner = this.inner;
      const ended = new Promise<void>((resolve) => inner.once('end', resolve));
      inner.end();
      await Promise.race([ended, this.innerFailed!]);
      return;
    }
    if (this.indexPieces.length > 0) {
      try { this.index = decodeIndexPayload(Buffer.concat(this.indexPieces)); } catch (e) {
        throw corrupt(`the image's frame index is damaged: ${(e as Error).message}`);
      }
    }
    if (this.index !== undefined) {
      const wrong = this.index.format !== this.format ? `the frame index is for ${this.index.format}` : indexMismatch(this.index, this.frames);
      if (wrong !== undefined) throw corrupt(`${wrong} (the image was damaged or altered after capture)`);
    }
  }

  /** Whether the queued bytes are a prefix of a gzip member / zstd or skippable frame magic. */
  private couldStartFrame(): boolean {
    const head = this.q.peek(4);
    const prefixOf = (magic: number[]) => head.every((b, i) => i >= magic.length || b === magic[i]);
    if (this.format === 'gzip') return prefixOf([0x1f, 0x8b]);
    return prefixOf([0x28, 0xb5, 0x2f, 0xfd]) || ((head[0] & 0xf0) === 0x50 && prefixOf([head[0], 0x2a, 0x4d, 0x18]));
  }

  /** The next booty gzip member, 'more' to wait for bytes, 'stream' when it is not one. */
  private nextGzip(): { data: Buffer; size: number; headerLength: number } | 'more' | 'stream' | 'stop' | 'next' {
    if (this.q.length < 2) return 'more';
    if (this.consumed > 0 && (this.q.byteAt(0) !== 0x1f || this.q.byteAt(1) !== 0x8b)) return 'stop';
    // the fixed header says how long the extra field is: peek just that much
    const fixed = this.q.peek(12);
    const h = parseBootyGzipHeader(fixed.length < 12 ? fixed : this.q.peek(12 + fixed.readUInt16LE(10)));
    if (h === 'more') return 'more';
    if (h === undefined || h.size > this.maxFrame || h.memberLength > this.maxFrame + (1 << 20)) return 'stream';
    if (this.q.length < h.memberLength) return 'more';
    const data = this.q.take(h.memberLength);
    this.consumed += h.memberLength;
    if (h.indexPiece !== undefined) {
      // an index member: empty deflate data, CRC-32 and ISIZE of nothing
      const body = data.subarray(h.headerLength);
      if (h.size !== 0 || body.length !== EMPTY_DEFLATE.length + GZIP_TRAILER || !body.subarray(0, 2).equals(EMPTY_DEFLATE) || body.readUInt32LE(2) !== 0 || body.readUInt32LE(6) !== 0) {
        throw corrupt(`a gzip index member at byte ${this.consumed - h.memberLength} is damaged`);
      }
      this.indexPieces.push(h.indexPiece);
      return 'next';
    }
    return { data, size: h.size, headerLength: h.headerLength };
  }

  /** The next zstd frame with a content size, 'more', 'stream', or 'next' after a skippable frame. */
  private nextZstd(): { data: Buffer; size: number } | 'more' | 'stream' | 'stop' | 'next' {
    if (this.q.length === 0) return 'more';
    if (this.walker === undefined) {
      const start = parseZstdFrameStart(this.q.peek(18));
      if (start.kind === 'more') return this.q.length >= 18 ? 'stream' : 'more';
      if (start.kind === 'unknown') return this.consumed > 0 ? 'stop' : 'stream';
      if (start.kind === 'invalid') return 'stream';
      if (start.kind === 'skippable') {
        if (start.magic === ZSTD_INDEX_MAGIC && start.length <= MAX_INDEX_FRAME) {
          if (this.q.length < start.length) return 'more';
          const frame = this.q.take(start.length);
          this.consumed += start.length;
          try { this.index = decodeIndexPayload(frame.subarray(8)); } catch (e) {
            throw corrupt(`the image's frame index is damaged: ${(e as Error).message}`);
          }
          return 'next';
        }
        this.skipLeft = start.length;
        return 'next';
      }
      const h = start.header;
      if (h.contentSize === undefined || h.contentSize > this.maxFrame || h.hasDictionary) return 'stream';
      this.walker = new ZstdFrameWalker(h);
      this.walkerSize = h.contentSize;
    }
    const q = this.q;
    const length = this.walker.walk(q.length, (at) => q.byteAt(at) | (q.byteAt(at + 1) << 8) | (q.byteAt(at + 2) << 16));
    if (length === 'bad') { this.walker = undefined; return 'stream'; }
    if (length === undefined) {
      // frames that claim a small size but go on and on are the streaming decoder's to judge
      if (this.walker.needed > 2 * this.maxFrame + (1 << 20)) { this.walker = undefined; return 'stream'; }
      return 'more';
    }
    if (q.length < length) return 'more';
    this.walker = undefined;
    const data = q.take(length);
    this.consumed += length;
    return { data, size: this.walkerSize };
  }

  /** Starts decoding one frame on the pool; emits finished frames; waits while too many are in flight. */
  private async dispatch(f: { data: Buffer; size: number; headerLength?: number }): Promise<void> {
    const slot: Slot = { size: f.size, compressed: f.data.length, done: Promise.resolve() };
    const start = this.consumed - f.data.length;
    const known = this.zeroFrame;
    if (known !== undefined && known.size === f.size && known.frame.equals(f.data)) {
      // byte for byte the frame that decoded to zeros before: decoding is deterministic
      this.zeroFrames++;
      slot.out = this.zeros(f.size);
    } else {
      const small = f.data.length <= SMALL_FRAME ? Buffer.from(f.data) : undefined;
      slot.done = this.decode(f, start).then((out) => {
        slot.out = out;
        if (small !== undefined && out.equals(this.zeros(out.length))) this.zeroFrame = { frame: small, size: out.length };
      }, (e: Error) => { slot.err = e; });
    }
    this.slots.push(slot);
    while (this.slots.length > 0 && (this.slots.length >= this.maxInflight || this.slots[0].out !== undefined || this.slots[0].err !== undefined)) {
      await this.emitHead();
    }
  }

  private async decode(f: { data: Buffer; size: number; headerLength?: number }, start: number): Promise<Buffer> {
    const where = `${this.format === 'gzip' ? 'gzip member' : 'zstd frame'} at byte ${start}`;
    if (this.format === 'zstd') {
      let out: Buffer;
      try { out = (await this.pool.run({ op: 'unzstd', data: f.data, size: f.size }, true)).out; } catch (e) { throw this.workerError(e, where); }
      if (out.length !== f.size) throw corrupt(`${where} decodes to ${out.length} bytes, its header says ${f.size}`);
      return out;
    }
    const member = f.data;
    const end = member.length - GZIP_TRAILER;
    const crc = member.readUInt32LE(end);
    const isize = member.readUInt32LE(end + 4);
    if (isize !== (f.size >>> 0)) throw corrupt(`${where}: its trailer says ${isize} bytes, its header ${f.size}`);
    const payload = member.subarray(f.headerLength!, end);
    const payloadLength = payload.length; // the buffer moves to the worker: read it first
    let r;
    try { r = await this.pool.run({ op: 'inflate', data: payload, size: f.size }, true); } catch (e) { throw this.workerError(e, where); }
    if (r.consumed !== payloadLength) throw corrupt(`${where}: the deflate data ends ${payloadLength - r.consumed!} bytes before the member does`);
    if (r.out.length !== f.size) throw corrupt(`${where} decodes to ${r.out.length} bytes, its header says ${f.size}`);
    if (r.crc !== crc) throw corrupt(`${where}: incorrect data check (CRC-32 ${(r.crc! >>> 0).toString(16)}, trailer says ${crc.toString(16)})`);
    return r.out;
  }

  /** A worker's zlib error, worded as corruption: the frame was complete, so it is never truncation. */
  private workerError(e: unknown, where: string): Error {
    if (!(e instanceof CodecError)) return e as Error;
    if (e.code === 'ERR_BUFFER_TOO_LARGE') return corrupt(`${where} decodes to more bytes than its header says`);
    const msg = e.code === 'Z_BUF_ERROR' || /unexpected end/i.test(e.message) ? 'the compressed data stops before the frame does' : e.message;
    return corrupt(`${where}: ${msg}`);
  }

  private async emitHead(): Promise<void> {
    const slot = this.slots[0];
    await slot.done;
    this.slots.shift();
    if (slot.err !== undefined) throw slot.err;
    this.frames.add(slot.compressed, slot.size);
    this.pace(slot.size);
    if (slot.out!.length > 0) this.push(slot.out);
  }

  private zeros(size: number): Buffer {
    if (this.zeroOut === undefined || this.zeroOut.length < size) this.zeroOut = Buffer.alloc(size);
    return this.zeroOut.subarray(0, size);
  }

  /** From here on, the streaming decoder reads the rest (what is queued, then every later chunk). */
  private async switchToStream(): Promise<void> {
    while (this.slots.length > 0) await this.emitHead();
    this.streamedFrom = this.consumed;
    this.walker = undefined;
    const inner = createDecompressor(this.format)!;
    this.inner = inner;
    this.innerFailed = new Promise<never>((_, reject) => inner.once('error', (e: Error) => { this.innerError = e; reject(e); }));
    this.innerFailed.catch(() => {});
    inner.on('data', (d: Buffer) => { if (!this.push(d)) inner.pause(); });
    await this.feedInner(this.q.drain());
  }

  private async feedInner(chunks: Buffer[]): Promise<void> {
    const inner = this.inner!;
    for (const c of chunks) {
      if (this.innerError) throw this.innerError;
      const written = new Promise<void>((resolve, reject) => inner.write(c, (e) => (e ? reject(e) : resolve())));
      await Promise.race([written, this.innerFailed!]);
    }
  }
}
