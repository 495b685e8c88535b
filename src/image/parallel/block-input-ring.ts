// A block's compressed bytes on their way from the main thread (which reads them from the network
// in order and hashes them) to the worker that decodes the block, through a fixed shared buffer:
// the worker starts decoding with the first bytes in and frees room as it consumes them. So a block
// of any size holds at most the ring's bytes, and the next block can start on the other worker
// while this one still decodes its tail: the deploy's compressed bytes in memory are the rings',
// whatever the blocks' sizes (xz-placed-writer.ts; README, "Memory of the block decoders").
//
// One ring carries one block at a time: the main thread binds it to a block (counters back to 0),
// writes the block's bytes as room allows, and binds it to another block only once the worker has
// consumed every byte of the first (the worker never touches the ring after its last byte).
// Counters are Int32 (a block is at most PLACE_MAX_BLOCK plus its framing, far below 2^31).
import type { ByteQueue } from '../byte-queue.ts';

/** What crosses to the worker: the bytes and the counters. */
export interface RingShared {
  bytes: SharedArrayBuffer;
  /** Int32 [written, read, stop]: bytes written into the ring for the bound block, bytes the
   *  worker consumed, and 1 once either side gave up (the other then stops waiting) */
  ctl: SharedArrayBuffer;
}

const WRITTEN = 0;
const READ = 1;
const STOP = 2;
/** how long one side sleeps on the other before it looks again at whether the deploy stopped */
const WAIT_MS = 1000;

/** The main thread's side: one ring, bound to one block at a time. */
export class RingWriter {
  readonly shared: RingShared;
  readonly size: number;
  private readonly bytes: Uint8Array;
  private readonly ctl: Int32Array;
  /** compressed bytes of the block bound to it (0: none yet) */
  private length = 0;

  constructor(size: number) {
    this.size = size;
    this.shared = { bytes: new SharedArrayBuffer(size), ctl: new SharedArrayBuffer(3 * 4) };
    this.bytes = new Uint8Array(this.shared.bytes);
    this.ctl = new Int32Array(this.shared.ctl);
  }

  /** No block bound, or the bound block's bytes are all written and consumed. */
  get free(): boolean {
    return Atomics.load(this.ctl, READ) === this.length;
  }

  /** Binds a block of `length` compressed bytes (the ring must be free). */
  bind(length: number): void {
    if (!this.free) throw new Error('internal: a ring was bound while its block was still being read');
    this.length = length;
    Atomics.store(this.ctl, WRITTEN, 0);
    Atomics.store(this.ctl, READ, 0);
  }

  /** Resolves once the worker consumed more (or after WAIT_MS, or at once when it stopped). */
  async consumed(): Promise<void> {
    const read = Atomics.load(this.ctl, READ);
    if (Atomics.load(this.ctl, STOP) !== 0) return;
    const w = Atomics.waitAsync(this.ctl, READ, read, WAIT_MS);
    if (w.async) await w.value;
  }

  /** Moves the next `n` bytes of `q` into the ring, waiting for room as the worker consumes;
   *  `failed` is asked after each wait (the deploy failed: stop waiting, throw it). */
  async write(q: ByteQueue, n: number, failed: () => Error | undefined): Promise<void> {
    while (n > 0) {
      const written = Atomics.load(this.ctl, WRITTEN);
      const room = this.size - (written - Atomics.load(this.ctl, READ));
      if (room === 0) {
        await this.consumed();
        const e = failed();
        if (e !== undefined) throw e;
        continue;
      }
      const at = written % this.size;
      const k = Math.min(n, room, this.size - at);
      q.takeInto(k, this.bytes, at);
      Atomics.store(this.ctl, WRITTEN, written + k);
      Atomics.notify(this.ctl, WRITTEN);
      n -= k;
    }
  }

  /** Wakes the worker for good (the deploy failed or ended). */
  stop(): void {
    Atomics.store(this.ctl, STOP, 1);
    Atomics.notify(this.ctl, WRITTEN);
    Atomics.notify(this.ctl, READ);
  }
}

/** The worker's side: the bound block's bytes as they come. */
export class RingReader {
  private readonly bytes: Buffer;
  private readonly ctl: Int32Array;
  private readonly size: number;
  private readonly length: number;
  private read = 0;

  constructor(shared: RingShared, length: number) {
    this.bytes = Buffer.from(shared.bytes);
    this.ctl = new Int32Array(shared.ctl);
    this.size = shared.bytes.byteLength;
    this.length = length;
  }

  /** Every byte of the block consumed. */
  get done(): boolean { return this.read === this.length; }

  /** The bytes in the ring now, as one contiguous view (up to the ring's end); length 0 when
   *  nothing is there yet. */
  view(): { buf: Buffer; off: number; len: number } {
    const written = Atomics.load(this.ctl, WRITTEN);
    const at = this.read % this.size;
    return { buf: this.bytes, off: at, len: Math.min(written - this.read, this.size - at) };
  }

  /** `n` bytes of the last view were consumed: their room goes back to the main thread. */
  advance(n: number): void {
    if (n === 0) return;
    this.read += n;
    Atomics.store(this.ctl, READ, this.read);
    Atomics.notify(this.ctl, READ);
  }

  /** Waits for more bytes; false once the main thread stopped the ring. `stopped` is asked
   *  after each wait (the worker's own stop gate). */
  async more(stopped: () => boolean): Promise<boolean> {
    for (;;) {
      if (Atomics.load(this.ctl, STOP) !== 0 || stopped()) return false;
      const written = Atomics.load(this.ctl, WRITTEN);
      if (written > this.read) return true;
      const w = Atomics.waitAsync(this.ctl, WRITTEN, written, WAIT_MS);
      if (w.async) await w.value;
    }
  }

  /** The worker gave up on the block (refused, or a write failed): the main thread stops feeding. */
  stop(): void {
    Atomics.store(this.ctl, STOP, 1);
    Atomics.notify(this.ctl, READ);
  }
}
