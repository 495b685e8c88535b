// The sink of an xz deploy whose blocks are written where they belong (xz-block-decompress.ts
// with `placer`): every xz block with sizes in its header starts at a disk offset known before it
// is decoded (the sum of the uncompressed sizes before it), so a block worker decodes it and
// writes its output there itself (block-decode-worker-entry.ts, placeBlock): no block's output
// waits for the one before it, and nothing of it crosses between threads but its edges. A block's
// compressed bytes go to its worker through a ring (block-input-ring.ts) as they arrive: the
// worker decodes while the rest comes, and a block of any size holds at most a ring's bytes. One
// ring per worker: while one worker decodes the tail of its block (in its ring), the next block
// fills the other ring and its worker starts. Memory for compressed bytes: the rings
// (RING_BYTES each), whatever the blocks' sizes; per block decoding: liblzma's dictionary and the
// worker's two 1 MiB chunks.
//
// This thread keeps what a worker must not write:
// - the boot area: the first `holdBack` bytes come back as bytes, are checked (checkHead) before
//   any worker may write (a shared gate the workers wait on), and are written last by commit(),
//   after the image was verified, as sink/writer.ts does; the disk's first and last MiB are zeroed
//   before the gate opens;
// - the partial pages where two blocks meet at an offset that is not page-aligned (O_DIRECT writes
//   whole pages): each block hands back its ends, written once both halves are in;
// - zero runs (BLKZEROOUT / punched holes), which the workers report as ranges.
// Blocks finish in any order; `bytes` (what progress and error messages report as written) is the
// contiguous prefix of finished blocks. A failed block stops every worker at its next chunk; the
// deploy then fails, never reports success.
import { Writable } from 'node:stream';
import { alignedBuffer, DIRECT_ALIGN, type WriteTarget } from '../sink/target.ts';
import { SizeLimitExceeded } from '../transforms.ts';
import { BlockWriteError, type BlockDecodePool, type PlacedPart } from './block-decode-pool.ts';
import { RingWriter } from './block-input-ring.ts';
import type { ByteQueue } from '../byte-queue.ts';

/** One xz block to place, as xz-block-decompress.ts read its header: `length` compressed bytes
 *  (header to check) that follow in the input. */
export interface PlacedBlock { length: number; flags: Buffer; unpadded: number; uncompressed: number }

/** Where the main thread puts a placed block's compressed bytes as they arrive. */
export interface BlockFeed {
  /** Moves the next `n` bytes of `q` (of the block's `length`) to the block's worker; resolves
   *  once they are in its ring (waits while the ring is full); throws the deploy's failure. */
  write(q: ByteQueue, n: number): Promise<void>;
}

export interface PlacedWriterOptions {
  target: WriteTarget;
  pool: BlockDecodePool;
  /** most bytes the image may have (the disk size); undefined = no limit (growing file) */
  limit?: number;
  zeroRuns?: { enabled?: boolean };
  onBytes?: (n: number) => void;
  /** as ImageWriter's: a look at the first `bytes` bytes before anything touches the disk */
  checkHead?: { bytes: number; check(head: Buffer): Error | undefined };
  /** rings, each the compressed bytes of one block on their way to its worker (default: one per worker) */
  rings?: number;
  /** bytes of each ring */
  ringBytes?: number;
}

const HOLD_BACK = 1 << 20;
/** Bytes of each ring. The next block starts on the other worker once at most this much of the
 *  block before it is left unconsumed: a block of up to this size (compressed) lets the next one
 *  start at once, a larger one for its last part. The size is a trade of peak RSS against that
 *  overlap (README, "Memory of the block decoders": measured at 2, 3, 4 and 8 MiB; 4 MiB, before
 *  the input's chunks were collected every 2 MiB, passed the 150 MiB bound of the RSS test by 2-4
 *  MiB in three CI runs and failed it in a fourth). */
export const RING_BYTES = 3 << 20;

interface Slot { end: number; done: boolean; ops: Array<Promise<void>> }

export class PlacedBlockWriter extends Writable {
  readonly target: WriteTarget;
  /** the contiguous prefix of the image that is on the disk (or held back for commit) */
  bytes = 0;
  /** true once anything was written to the target */
  touched = false;
  zeroBytes = 0;
  /** blocks placed so far */
  blocks = 0;
  private readonly o: PlacedWriterOptions;
  private readonly head = alignedBuffer(HOLD_BACK).fill(0);
  private readonly gate = new Int32Array(new SharedArrayBuffer(4));
  private readonly slots = new Map<number, Slot>();
  private readonly running = new Set<Promise<void>>();
  private readonly edges = new Map<number, { buf: Buffer; got: number }>();
  private readonly rings: RingWriter[] = [];
  private readonly ringCount: number;
  private readonly ringBytes: number;
  private nextKey = 0;
  /** key of the first block not finished (the prefix ends where it starts) */
  private prefixKey = 0;
  /** end of the image as placed so far */
  private imageEnd = 0;
  private headGot = 0;
  private headChecked = false;
  private preparing: Promise<void> | undefined;
  private failure: Error | undefined;

  constructor(o: PlacedWriterOptions) {
    super({ highWaterMark: 1 << 10 });
    this.o = o;
    this.target = o.target;
    this.ringCount = Math.max(1, o.rings ?? o.pool.size);
    this.ringBytes = o.ringBytes ?? RING_BYTES;
  }

  /** Starts one block at disk offset `offset`: binds it to a free ring (waits for one: the block
   *  before it on that ring must have been consumed) and queues it for a worker. The caller then
   *  feeds the block's bytes through the returned feed. `describe` turns the worker's refusal of
   *  the block into the error the deploy reports. */
  async place(b: PlacedBlock, offset: number, describe: (e: Error) => Error): Promise<BlockFeed> {
    if (this.failure) throw this.failure;
    if (this.o.limit !== undefined && offset + b.uncompressed > this.o.limit) throw new SizeLimitExceeded(this.o.limit);
    const ring = await this.freeRing();
    ring.bind(b.length);
    const key = this.nextKey++;
    const slot: Slot = { end: offset + b.uncompressed, done: false, ops: [] };
    this.slots.set(key, slot);
    this.imageEnd = Math.max(this.imageEnd, slot.end);
    const task = {
      op: 'xz-place' as const, key, ring: ring.shared, length: b.length, flags: b.flags, unpadded: b.unpadded, uncompressed: b.uncompressed,
      offset, fd: this.target.fd, gate: this.gate, holdBack: HOLD_BACK, zeroRuns: this.o.zeroRuns?.enabled ?? true,
    };
    // (this thread's writes for the block are waited for either way: none may outlive a failure)
    const run: Promise<void> = this.o.pool.place(task, (p) => this.take(slot, p))
      .then(() => Promise.all(slot.ops), async (e: Error) => { await Promise.allSettled(slot.ops); throw e instanceof BlockWriteError ? e : describe(e); })
      .then(() => { slot.done = true; this.advance(); }, (e: Error) => this.fail(e))
      .finally(() => this.running.delete(run));
    this.running.add(run);
    this.blocks++;
    return { write: (q, n) => ring.write(q, n, () => this.failure) };
  }

  /** A ring whose block was consumed (made while there are fewer than ringCount). */
  private async freeRing(): Promise<RingWriter> {
    for (;;) {
      const free = this.rings.find((r) => r.free);
      if (free !== undefined) return free;
      if (this.rings.length < this.ringCount) {
        const r = new RingWriter(this.ringBytes);
        this.rings.push(r);
        return r;
      }
      await Promise.race(this.rings.map((r) => r.consumed()));
      if (this.failure) throw this.failure;
    }
  }

  /** Every block placed so far finished (its writes done); throws the first failure. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
    if (this.failure) throw this.failure;
    // an image too short to fill the head check: checked with all there is
    if (!this.headChecked) this.checkHead();
    if (this.failure) throw this.failure;
  }

  private take(slot: Slot, p: PlacedPart): void {
    if (this.failure) return;
    if (p.kind === 'head') {
      this.head.set(p.bytes, p.at);
      const want = this.o.checkHead?.bytes ?? 0;
      this.headGot += Math.max(0, Math.min(p.at + p.bytes.length, want) - p.at);
      if (!this.headChecked && this.headGot >= want) this.checkHead();
      return;
    }
    if (p.kind === 'zero') {
      this.zeroBytes += p.length;
      this.addOp(slot, () => this.target.zeroRange(p.at, p.length));
      return;
    }
    const page = p.at - (p.at % DIRECT_ALIGN);
    let e = this.edges.get(page);
    if (e === undefined) { e = { buf: alignedBuffer(DIRECT_ALIGN).fill(0), got: 0 }; this.edges.set(page, e); }
    e.buf.set(p.bytes, p.at - page);
    e.got += p.bytes.length;
    if (e.got === DIRECT_ALIGN) {
      this.edges.delete(page);
      const buf = e.buf;
      this.addOp(slot, () => this.target.writeAt(buf, page));
    }
  }

  /** The head is in: check it, then zero the disk's boot area and let the workers write. */
  private checkHead(): void {
    this.headChecked = true;
    const c = this.o.checkHead;
    const problem = c?.check(Buffer.from(this.head.subarray(0, Math.min(c.bytes, this.imageEnd))));
    if (problem !== undefined) { this.fail(problem); return; }
    this.prepare().then(() => {
      if (this.failure) return;
      Atomics.store(this.gate, 0, 1);
      Atomics.notify(this.gate, 0);
    }, (e: Error) => this.fail(new BlockWriteError(`zeroing the disk's boot area failed: ${e.message}`)));
  }

  private prepare(): Promise<void> {
    this.preparing ??= (async () => {
      this.touched = true;
      const size = this.target.info.size;
      await Promise.all([
        this.target.zeroRange(0, HOLD_BACK),
        ...(size >= 4 * HOLD_BACK ? [this.target.zeroRange(size - HOLD_BACK, HOLD_BACK)] : []),
      ]);
    })();
    return this.preparing;
  }

  private addOp(slot: Slot, op: () => Promise<void>): void {
    const p = this.whenReady(op);
    p.catch(() => {}); // (awaited with the block; a failure before that is not unhandled)
    slot.ops.push(p);
  }

  /** Runs `op` once the boot area is zeroed (writes of this thread wait like the workers'). */
  private async whenReady(op: () => Promise<void>): Promise<void> {
    await this.prepare();
    if (this.failure) throw this.failure;
    try { await op(); } catch (e) { throw new BlockWriteError((e as Error).message); }
  }

  private advance(): void {
    for (;;) {
      const s = this.slots.get(this.prefixKey);
      if (s === undefined || !s.done) return;
      this.slots.delete(this.prefixKey);
      this.prefixKey++;
      const n = s.end - this.bytes;
      this.bytes = s.end;
      this.o.onBytes?.(n);
    }
  }

  /** Stops every worker at its next chunk, now (the decoder failed: framing, index, truncation),
   *  so that what the failure reports about the disk stays true. */
  stop(e: Error): void { this.fail(e); }

  private fail(e: Error): void {
    this.failure ??= e;
    Atomics.store(this.gate, 0, 2);
    Atomics.notify(this.gate, 0);
    for (const r of this.rings) r.stop();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    cb(chunk.length === 0 ? null : new Error('PlacedBlockWriter: the decoder writes the blocks itself; no bytes come down the stream'));
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.finish().then(() => cb(), (e: Error) => cb(e));
  }

  private async finish(): Promise<void> {
    await this.drain();
    if (this.imageEnd > 0) await this.prepare();
    // the one page left half filled is the image's last (an image that does not end on a page)
    for (const [page, e] of this.edges) {
      if (page + e.got !== this.imageEnd) throw new Error(`internal: a page at byte ${page} was left with ${e.got} bytes of the image's ${this.imageEnd}`);
      await this.target.writeAt(e.buf.subarray(0, e.got), page);
    }
    this.edges.clear();
    await this.target.ensureLength(this.imageEnd);
    await this.target.sync();
  }

  /** After verification: the boot area, synced; then BLKRRPART (returns why not, if not). */
  async commit(): Promise<string | undefined> {
    const n = Math.min(HOLD_BACK, this.bytes);
    if (n > 0) {
      await this.target.writeAt(this.head.subarray(0, n), 0);
      await this.target.sync();
    }
    return this.target.rereadPartitions();
  }

  /** Stops the workers and waits until none writes any more (none may land after we report). */
  async abort(): Promise<void> {
    this.fail(new Error('aborted'));
    await this.preparing?.catch(() => {});
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
    await this.target.close();
  }

  async close(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
    await this.target.close();
  }
}
