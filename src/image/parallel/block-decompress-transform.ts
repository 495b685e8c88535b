// What the block decoders (xz-block-decompress.ts, bzip2-block-decompress.ts) share as streams: a
// Transform whose input handling is asynchronous (it waits for workers), and whose output is each
// block's parts (block-decode-pool.ts: bytes moved from a worker, all-zero runs as counts) pushed
// in order. A block's output waits for the reader as a whole, one block at a time: the decoder
// does not go on to the next block until the reader has taken room again, so finished blocks do
// not pile up in the readable buffer.
import { Transform, type TransformCallback } from 'node:stream';
import type { BlockPart } from './block-decode-pool.ts';
import { lendBlock } from '../sink/block-loan.ts';
import { freeMovedBuffer } from './free-moved-buffer.ts';

/** Zero counts are pushed as views of one shared all-zero buffer of this size. */
const ZERO_PART = 4 << 20;

export abstract class BlockDecompressTransform extends Transform {
  private zeroOut: Buffer | undefined;
  /** set while a block's output waits for the reader to take room */
  private waitingRead: (() => void) | undefined;

  constructor() {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
  }

  /** Input bytes consumed (deploy's trailingBytes() reads it). */
  abstract get bytesWritten(): number;
  /** Takes one chunk of the compressed input; resolves when the next may come. */
  protected abstract accept(chunk: Buffer): Promise<void>;
  /** No more input: resolves once every block's output was pushed (or the decoder's own sink is done). */
  protected abstract finish(): Promise<void>;
  /** Told of a failure before the stream reports it (e.g. to stop workers writing at once). */
  protected onFailure(_e: Error): void {}
  /** The reader wants more (e.g. resume an inner stream that was paused). */
  protected onRead(): void {}

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.accept(chunk).then(() => cb(), (e: Error) => { this.onFailure(e); cb(e); });
  }

  override _flush(cb: TransformCallback): void {
    this.finish().then(() => cb(), (e: Error) => { this.onFailure(e); cb(e); });
  }

  override _read(size: number): void {
    this.onRead();
    const f = this.waitingRead;
    this.waitingRead = undefined;
    f?.();
    super._read(size);
  }

  /** Pushes one block's output in order and waits, if the reader has no room left, until it
   *  has. Resolves to the bytes pushed that were not zero counts (what the caller's GC pacing
   *  counts: those came from a worker and are garbage once the writer copied them). */
  protected async emitParts(parts: readonly BlockPart[]): Promise<number> {
    let moved = 0;
    let room = true;
    for (const p of parts) {
      if (typeof p !== 'number') {
        moved += p.byteLength;
        // the worker moved the part here, its buffer holds nothing else: freed once the writer copied it
        room = this.push(lendBlock(Buffer.from(p.buffer, p.byteOffset, p.byteLength), () => freeMovedBuffer(p), false));
        continue;
      }
      for (let left = p; left > 0; left -= ZERO_PART) room = this.push(this.zeros(Math.min(left, ZERO_PART)));
    }
    if (!room) await new Promise<void>((resolve) => { this.waitingRead = resolve; });
    return moved;
  }

  private zeros(size: number): Buffer {
    this.zeroOut ??= Buffer.alloc(ZERO_PART);
    return this.zeroOut.subarray(0, size);
  }
}
