// Capture's compressor on every core: a Transform that cuts its input into fixed-size blocks,
// compresses each block as an independent frame on the codec pool (a gzip member with its length
// in the header, or a zstd frame with its content size and a checksum: frame-format.ts), and
// emits the frames in input order, then the frame index (frame-index.ts). The output is a plain
// multi-member gzip / multi-frame zstd file: stock gunzip, pigz, zstd and every booty deploy
// decode it unchanged; booty's deploy also decodes its frames in parallel.
//
// Memory is constant: at most `maxInflight` blocks are being compressed or waiting to be emitted.
// All-zero blocks (free space: most of a typical disk) skip the pool: a memcmp finds them, and
// the frame for a zero block of that size is compressed once and reused.
import { Transform, type TransformCallback } from 'node:stream';
import { buildGzipMember } from '../format/frame-format.ts';
import { FrameList, encodeIndexPayload, wrapIndex, type FramedFormat } from '../format/frame-index.ts';
import type { CodecPool } from './codec-pool.ts';

export const DEFAULT_FRAME_BLOCK = 4 << 20;
/** Blocks in flight are bounded by count and by bytes, whatever the worker count. */
const INFLIGHT_BYTES = 64 << 20;

export interface ParallelCompressOptions {
  format: FramedFormat;
  /** gzip 1-9, zstd 1-19 */
  level: number;
  pool: CodecPool;
  /** uncompressed bytes per frame (default 4 MiB) */
  blockSize?: number;
  /** blocks compressing or waiting to be emitted (default one per worker plus one, within 64 MiB) */
  maxInflight?: number;
  /** true: input chunks of exactly blockSize belong to us (fresh buffers, e.g. DiskReader's)
   *  and are handed to the workers without a copy */
  ownsInput?: boolean;
  /** append the frame index (default true) */
  index?: boolean;
}

interface Slot { size: number; zero: boolean; out?: Buffer; err?: Error; done: Promise<void> }

let zeroRef: Buffer = Buffer.alloc(0);
/** True when every byte of `block` is 0 (memcmp against a shared zero buffer). */
export function isAllZero(block: Buffer): boolean {
  if (block.length > zeroRef.length) zeroRef = Buffer.alloc(block.length);
  return block.equals(zeroRef.subarray(0, block.length));
}

/** The frame for `size` zero bytes, per format and level: compressed once per process. */
const zeroFrames = new Map<string, Promise<Buffer>>();

export class ParallelCompressor extends Transform {
  readonly format: FramedFormat;
  readonly level: number;
  readonly blockSize: number;
  /** frames emitted so far (compressed and uncompressed length of each) */
  readonly frames = new FrameList();
  /** all-zero blocks that were not sent to the pool */
  zeroBlocks = 0;
  private readonly pool: CodecPool;
  private readonly maxInflight: number;
  private readonly ownsInput: boolean;
  private readonly withIndex: boolean;
  private readonly slots: Slot[] = [];
  private partial: Buffer | undefined;
  private partialLength = 0;

  constructor(o: ParallelCompressOptions) {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
    this.format = o.format;
    this.level = o.level;
    this.pool = o.pool;
    this.blockSize = o.blockSize ?? DEFAULT_FRAME_BLOCK;
    this.maxInflight = Math.max(2, o.maxInflight ?? Math.min(o.pool.size + 1, Math.floor(INFLIGHT_BYTES / this.blockSize)));
    this.ownsInput = o.ownsInput ?? false;
    this.withIndex = o.index ?? true;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.accept(chunk).then(() => cb(), (e: Error) => cb(e));
  }

  override _flush(cb: TransformCallback): void {
    this.finish().then(() => cb(), (e: Error) => cb(e));
  }

  private async accept(chunk: Buffer): Promise<void> {
    if (this.partial === undefined && chunk.length === this.blockSize) {
      await this.submit(chunk, this.ownsInput);
      return;
    }
    let pos = 0;
    while (pos < chunk.length) {
      this.partial ??= Buffer.allocUnsafeSlow(this.blockSize);
      const n = Math.min(this.blockSize - this.partialLength, chunk.length - pos);
      chunk.copy(this.partial, this.partialLength, pos, pos + n);
      this.partialLength += n;
      pos += n;
      if (this.partialLength === this.blockSize) {
        const block = this.partial;
        this.partial = undefined;
        this.partialLength = 0;
        await this.submit(block, true);
      }
    }
  }

  private async finish(): Promise<void> {
    if (this.partial !== undefined && this.partialLength > 0) {
      const block = this.partial.subarray(0, this.partialLength);
      this.partial = undefined;
      await this.submit(block, true);
    }
    while (this.slots.length > 0) await this.emitHead();
    if (this.withIndex) this.push(wrapIndex(this.format, encodeIndexPayload(this.format, this.blockSize, this.frames)));
  }

  /** Queues one block; emits finished frames; waits while too many are in flight. */
  private async submit(block: Buffer, owned: boolean): Promise<void> {
    const size = block.length;
    const slot: Slot = { size, zero: isAllZero(block), done: Promise.resolve() };
    const frame = slot.zero ? this.zeroFrame(size) : this.compress(block, owned);
    slot.done = frame.then((out) => { slot.out = out; }, (e: Error) => { slot.err = e; });
    this.slots.push(slot);
    if (slot.zero) this.zeroBlocks++;
    while (this.slots.length > 0 && (this.slots.length >= this.maxInflight || this.slots[0].out !== undefined || this.slots[0].err !== undefined)) {
      await this.emitHead();
    }
  }

  private async emitHead(): Promise<void> {
    const slot = this.slots[0];
    await slot.done;
    this.slots.shift();
    if (slot.err !== undefined) throw slot.err;
    const out = slot.out!;
    this.frames.add(out.length, slot.size);
    this.push(out);
  }

  private async compress(block: Buffer, owned: boolean): Promise<Buffer> {
    const size = block.length;
    if (this.format === 'zstd') return (await this.pool.run({ op: 'zstd', data: block, level: this.level }, owned)).out;
    const r = await this.pool.run({ op: 'deflate', data: block, level: this.level }, owned);
    return buildGzipMember({ deflate: r.out, crc32: r.crc!, size, xfl: this.level === 1 ? 4 : this.level === 9 ? 2 : 0 });
  }

  private zeroFrame(size: number): Promise<Buffer> {
    const key = `${this.format}:${this.level}:${size}`;
    let p = zeroFrames.get(key);
    if (p === undefined) {
      p = this.compress(Buffer.alloc(size), false);
      p.catch(() => zeroFrames.delete(key));
      zeroFrames.set(key, p);
    }
    return p;
  }
}
