// The sink of a deploy: a Writable that takes decompressed bytes, cuts them into large aligned
// blocks from a small fixed pool (3 x 4 MiB: constant memory whatever the image size), turns each block into
// data writes and zero runs (zeroruns.ts) and keeps a few of them in flight on the thread pool
// while decompression goes on.
//
// The disk only becomes bootable once the image is verified: the first `holdBack` bytes (1 MiB:
// MBR, GPT header and table, boot loader gap) are zeroed on disk before the first data write and
// kept in memory; commit() writes them last, after the checksum matched and everything else is on
// stable storage. A deploy that fails, is killed, or loses power midway leaves a disk with no
// partition table, which firmware skips (falling back to network boot) instead of booting half an
// image. The last MiB of the disk (where an old backup GPT lives) is zeroed at the start too.
import { Writable } from 'node:stream';
import { SizeLimitExceeded, ChunkAligner } from '../transforms.ts';
import { alignedBuffer, type WriteTarget } from './target.ts';
import { ZeroRunPlanner, takeZeroGrains, type WriteOp, type ZeroRunOptions } from './zeroruns.ts';
import { createGcPacer } from './gc-pacer.ts';
import { takeLoan } from './block-loan.ts';
import { BackgroundFlush, FLUSH_EVERY } from './background-flush.ts';

export const DEFAULT_BLOCK_SIZE = 4 << 20;
export const DEFAULT_HOLD_BACK = 1 << 20;

export interface ImageWriterOptions {
  target: WriteTarget;
  /** bytes per write block (multiple of 64 KiB); default 4 MiB */
  blockSize?: number;
  /** blocks in the pool: one filling, the rest in flight; default 3 */
  poolSize?: number;
  /** most bytes the stream may carry (the disk size); undefined = no limit (growing file) */
  limit?: number;
  zeroRuns?: ZeroRunOptions;
  /** bytes at the start written only by commit(); default 1 MiB, 0 = write in place */
  holdBack?: number;
  /** called with each chunk's length as it is accepted */
  onBytes?: (n: number) => void;
  /** a look at the image's first `bytes` bytes before anything touches the disk: an error it
   *  returns fails the stream with the disk untouched */
  checkHead?: { bytes: number; check(head: Buffer): Error | undefined };
  /** called once, when the head passed checkHead and the disk's ends start to be zeroed (before
   *  the first data write): the deploy logs it, to tell decoding from zeroing in a boot's log */
  onPrepare?: () => void;
  /** bytes written between flushes started in the background (background-flush.ts); 0: only the
   *  final fdatasync; default FLUSH_EVERY */
  flushEvery?: number;
}

class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiters: Array<(b: Buffer) => void> = [];
  constructor(count: number, size: number) {
    for (let i = 0; i < count; i++) this.free.push(alignedBuffer(size));
  }
  get(): Promise<Buffer> | Buffer {
    const b = this.free.pop();
    if (b !== undefined) return b;
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  put(b: Buffer): void {
    const w = this.waiters.shift();
    if (w !== undefined) w(b);
    else this.free.push(b);
  }
}

export class ImageWriter extends Writable {
  /** bytes accepted from the stream so far (the image offset reached) */
  bytes = 0;
  /** true once anything was written to the target (the disk is no longer untouched) */
  touched = false;
  readonly target: WriteTarget;
  private readonly blockSize: number;
  private readonly limit: number | undefined;
  private readonly holdBack: number;
  private readonly head: Buffer;
  private readonly pool: BufferPool;
  private readonly aligner: ChunkAligner;
  private readonly planner: ZeroRunPlanner;
  private readonly maxInflight: number;
  private readonly inflight = new Set<Promise<void>>();
  private readonly onBytes: ((n: number) => void) | undefined;
  private blockOffset = 0;
  private failure: Error | undefined;
  private prepared = false;
  /** the zeroing of the head and tail: once started it always completes (abort waits for it), so
   *  a failure report never finds the first MiB zeroed but an old backup GPT still in place */
  private preparing: Promise<void> | undefined;
  /** bytes that went to zero runs rather than data writes */
  zeroBytes = 0;
  private readonly pace = createGcPacer();
  private readonly checkHead: ImageWriterOptions['checkHead'];
  /** the first bytes kept for checkHead until it ran (undefined once it did, or without one) */
  private headSeen: Buffer[] | undefined;
  private headSeenBytes = 0;
  private readonly onPrepare: (() => void) | undefined;
  /** flushes the target while writing, where something beneath the disk buffers (background-flush.ts) */
  readonly flusher: BackgroundFlush;

  constructor(opts: ImageWriterOptions) {
    super({ highWaterMark: 1 << 20 });
    this.target = opts.target;
    this.flusher = new BackgroundFlush(() => this.target.sync(), { every: opts.flushEvery ?? FLUSH_EVERY });
    this.blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
    this.limit = opts.limit;
    this.holdBack = opts.holdBack ?? DEFAULT_HOLD_BACK;
    this.head = alignedBuffer(Math.max(this.holdBack, 4096)).fill(0);
    const poolSize = opts.poolSize ?? 3;
    this.pool = new BufferPool(poolSize, this.blockSize);
    this.maxInflight = Math.max(2, poolSize * 2);
    this.aligner = new ChunkAligner(this.blockSize);
    this.planner = new ZeroRunPlanner(opts.zeroRuns);
    this.onBytes = opts.onBytes;
    this.checkHead = opts.checkHead;
    this.onPrepare = opts.onPrepare;
    if (opts.checkHead !== undefined) this.headSeen = [];
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.accept(chunk).then(() => cb(), (e: Error) => cb(e));
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.flushAll().then(() => cb(), (e: Error) => cb(e));
  }

  private async accept(chunk: Buffer): Promise<void> {
    // a buffer lent by the decoder (block-loan.ts) goes back once written, or once copied
    const loan = takeLoan(chunk);
    const giveBack = loan?.giveBack;
    try {
      if (this.failure) throw this.failure;
      if (giveBack === undefined) this.pace(chunk.length);
      if (this.limit !== undefined && this.bytes + chunk.length > this.limit) throw new SizeLimitExceeded(this.limit);
      if (!this.prepared && !this.collectHead(chunk)) await this.ensurePrepared();
    } catch (e) {
      giveBack?.();
      throw e;
    }
    if (loan?.aligned === true && this.aligner.needsBlock() && chunk.length === this.blockSize) {
      // written as it is: the decoder filled it aligned, exactly one block long
      this.bytes += chunk.length;
      this.onBytes?.(chunk.length);
      await this.submitBlock(chunk, chunk.length, loan.giveBack, takeZeroGrains(chunk));
      return;
    }
    try {
      await this.copyIn(chunk);
    } finally {
      giveBack?.();
    }
  }

  private async copyIn(chunk: Buffer): Promise<void> {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.aligner.needsBlock()) this.aligner.setBlock(await this.pool.get());
      pos = this.aligner.fill(chunk, pos);
      if (this.aligner.full()) await this.submit();
    }
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
  }

  /** Keeps a copy of the first bytes for checkHead; true while more are needed. Nothing reaches
   *  the disk meanwhile: blocks fill in memory (a block is far larger than the head checked). */
  private collectHead(chunk: Buffer): boolean {
    if (this.headSeen === undefined || this.checkHead === undefined) return false;
    const want = this.checkHead.bytes - this.headSeenBytes;
    if (want > 0) {
      this.headSeen.push(Buffer.from(chunk.subarray(0, want)));
      this.headSeenBytes += Math.min(want, chunk.length);
    }
    return this.headSeenBytes < this.checkHead.bytes;
  }

  /** Runs checkHead on what was seen (all of a short image), then prepare(), once. */
  private async ensurePrepared(): Promise<void> {
    if (!this.prepared) {
      if (this.headSeen !== undefined && this.checkHead !== undefined) {
        const problem = this.checkHead.check(Buffer.concat(this.headSeen));
        if (problem !== undefined) throw problem;
        this.headSeen = undefined;
      }
      this.prepared = true;
      this.onPrepare?.();
      this.preparing = this.prepare();
    }
    await this.preparing;
  }

  /** Invalidates the disk's boot structures before the first data write (see the file comment). */
  private async prepare(): Promise<void> {
    this.touched = true;
    if (this.holdBack === 0) return;
    // both ends at once: they are independent, and each is a device round trip (slow on a busy
    // or emulated disk) that the first data write waits for
    const size = this.target.info.size;
    await Promise.all([
      this.target.zeroRange(0, this.holdBack),
      ...(size >= 4 * this.holdBack ? [this.target.zeroRange(size - this.holdBack, this.holdBack)] : []),
    ]);
  }

  private async submit(): Promise<void> {
    const block = this.aligner.take();
    if (block === undefined || block.length === 0) {
      if (block !== undefined) this.pool.put(block.buf);
      return;
    }
    await this.submitBlock(block.buf, block.length, () => this.pool.put(block.buf));
  }

  /** Plans and starts the writes of one block; `release` runs once none of them reads it any more. */
  private async submitBlock(buf: Buffer, length: number, release: () => void, zeroMap?: Uint8Array): Promise<void> {
    try {
      await this.ensurePrepared();
    } catch (e) {
      release();
      throw e;
    }
    const offset = this.blockOffset;
    this.blockOffset += length;
    const data: Promise<void>[] = [];
    try {
      const ops = this.planner.plan(offset, buf.subarray(0, length), zeroMap);
      for (const op of ops) {
        const started = await this.start(op);
        if (op.kind === 'data') data.push(started.done);
      }
    } finally {
      void Promise.allSettled(data).then(release);
    }
  }

  /** Starts one op once there is room in flight; resolves (once started) to its completion. */
  private async start(op: WriteOp): Promise<{ done: Promise<void> }> {
    while (this.inflight.size >= this.maxInflight) await Promise.race(this.inflight);
    this.failure ??= this.flusher.failure;
    if (this.failure) throw this.failure;
    const tracked: Promise<void> = this.run(op).then(
      () => { this.inflight.delete(tracked); },
      (e: Error) => { this.failure ??= e; this.inflight.delete(tracked); },
    );
    this.inflight.add(tracked);
    return { done: tracked };
  }

  private async run(op: WriteOp): Promise<void> {
    let offset = op.offset;
    if (op.kind === 'data') {
      let buf = op.buf;
      if (offset < this.holdBack) {
        const n = Math.min(this.holdBack - offset, buf.length);
        this.head.set(buf.subarray(0, n), offset);
        buf = buf.subarray(n);
        offset += n;
      }
      if (buf.length > 0) {
        await this.target.writeAt(buf, offset);
        this.flusher.wrote(buf.length);
      }
    } else {
      let length = op.length;
      if (offset < this.holdBack) {
        // the held-back head starts zeroed: nothing to record
        const n = Math.min(this.holdBack - offset, length);
        offset += n;
        length -= n;
      }
      this.zeroBytes += op.length;
      if (length > 0) await this.target.zeroRange(offset, length);
    }
  }

  /** Every write in flight and the background flush (if one runs) done; a failed flush counts
   *  as the writer's failure. */
  private async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    await this.flusher.settle();
    this.failure ??= this.flusher.failure;
  }

  private async flushAll(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.bytes > 0) await this.ensurePrepared();
    if (!this.aligner.needsBlock()) await this.submit();
    for (const op of this.planner.finish()) await this.start(op);
    await this.drain();
    if (this.failure) throw this.failure;
    await this.target.ensureLength(this.bytes);
    await this.target.sync();
  }

  /**
   * After the stream finished and the image was verified: writes the held-back head, syncs it and
   * re-reads the partition table. Returns why BLKRRPART did not happen, if it did not.
   */
  async commit(): Promise<string | undefined> {
    const n = Math.min(this.holdBack, this.bytes);
    if (n > 0) {
      // whole 4 KiB pages go through O_DIRECT; an odd-sized tiny image through the buffered fd
      await this.target.writeAt(this.head.subarray(0, n), 0);
      await this.target.sync();
    }
    return this.target.rereadPartitions();
  }

  /** Waits for every write in flight (none may land after we report), then closes. */
  async abort(): Promise<void> {
    this.failure ??= new Error('aborted');
    await this.preparing?.catch(() => {});
    await this.drain();
    await this.target.close();
  }

  async close(): Promise<void> {
    await this.drain();
    await this.target.close();
  }
}
