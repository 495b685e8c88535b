// The sink of a qcow2 deploy: clusters arrive in host (file) order, which is close to guest order
// for qemu-img-made files but not always, so each is written at its own guest offset. Clusters
// that follow each other on the guest are gathered into aligned 4 MiB blocks (a small fixed pool:
// constant memory) and written with O_DIRECT; guest clusters no table maps to data become zero
// runs (BLKZEROOUT, so they read zero whatever the disk held) once the data is down.
//
// Same boot-safety as the stream writer (sink/writer.ts): the first MiB is zeroed on disk before
// the first write, kept in memory and written by commit() only after the image was verified; the
// last MiB of the disk (an old backup GPT) is zeroed too.
import { alignedBuffer, type WriteTarget } from '../sink/target.ts';

const BLOCK = 4 << 20;
const POOL = 3;
const HOLD_BACK = 1 << 20;

export class PositionalWriter {
  readonly target: WriteTarget;
  /** true once anything was written to the target */
  touched = false;
  /** bytes placed (data) and zeroed so far */
  dataBytes = 0;
  zeroBytes = 0;
  private readonly head = alignedBuffer(HOLD_BACK).fill(0);
  private readonly free: Buffer[] = [];
  private readonly waiters: Array<(b: Buffer) => void> = [];
  private readonly inflight = new Set<Promise<void>>();
  private block: Buffer | undefined;
  private blockGuest = 0;
  private blockLen = 0;
  private failure: Error | undefined;
  private preparing: Promise<void> | undefined;

  private readonly onBytes: ((n: number) => void) | undefined;

  constructor(target: WriteTarget, onBytes?: (n: number) => void) {
    this.target = target;
    this.onBytes = onBytes;
    for (let i = 0; i < POOL; i++) this.free.push(alignedBuffer(BLOCK));
  }

  private prepare(): Promise<void> {
    this.preparing ??= (async () => {
      this.touched = true;
      await this.target.zeroRange(0, HOLD_BACK);
      const size = this.target.info.size;
      if (size >= 4 * HOLD_BACK) await this.target.zeroRange(size - HOLD_BACK, HOLD_BACK);
    })();
    return this.preparing;
  }

  private getBlock(): Promise<Buffer> | Buffer {
    const b = this.free.pop();
    if (b !== undefined) return b;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private putBlock(b: Buffer): void {
    const w = this.waiters.shift();
    if (w !== undefined) w(b); else this.free.push(b);
  }

  /** Places `len` bytes at guest offset `guest`; `fill(dst)` copies them into dst (len bytes).
   *  Calls run one after the other (the stream and finished decode batches both place clusters,
   *  and the block being filled is shared). */
  place(guest: number, len: number, fill: (dst: Buffer) => void): Promise<void> {
    const run = this.turn.then(() => this.placeNow(guest, len, fill));
    this.turn = run.catch(() => {});
    return run;
  }

  private turn: Promise<void> = Promise.resolve();

  private async placeNow(guest: number, len: number, fill: (dst: Buffer) => void): Promise<void> {
    if (this.failure) throw this.failure;
    this.dataBytes += len;
    this.onBytes?.(len);
    if (guest < HOLD_BACK) {
      // the boot area: kept in memory for commit(); clusters never straddle 1 MiB unless larger
      const inHead = Math.min(len, HOLD_BACK - guest);
      if (inHead === len) { fill(this.head.subarray(guest, guest + len)); return; }
      const tmp = Buffer.allocUnsafe(len);
      fill(tmp);
      tmp.copy(this.head, guest, 0, inHead);
      await this.placeBlock(HOLD_BACK, len - inHead, (dst) => tmp.copy(dst, 0, inHead));
      return;
    }
    await this.placeBlock(guest, len, fill);
  }

  private async placeBlock(guest: number, len: number, fill: (dst: Buffer) => void): Promise<void> {
    if (this.block !== undefined && (guest !== this.blockGuest + this.blockLen || this.blockLen + len > BLOCK)) await this.flushBlock();
    if (len > BLOCK) {
      const tmp = alignedBuffer(len);
      fill(tmp);
      await this.submit(tmp, guest, len, () => {});
      return;
    }
    if (this.block === undefined) {
      this.block = await this.getBlock();
      this.blockGuest = guest;
      this.blockLen = 0;
    }
    fill(this.block.subarray(this.blockLen, this.blockLen + len));
    this.blockLen += len;
  }

  private async flushBlock(): Promise<void> {
    const b = this.block;
    if (b === undefined) return;
    this.block = undefined;
    if (this.blockLen === 0) { this.putBlock(b); return; }
    await this.submit(b, this.blockGuest, this.blockLen, () => this.putBlock(b));
  }

  private async submit(buf: Buffer, guest: number, len: number, release: () => void): Promise<void> {
    try {
      await this.prepare();
      while (this.inflight.size >= POOL * 2) await Promise.race(this.inflight);
      if (this.failure) throw this.failure;
    } catch (e) { release(); throw e; }
    const p: Promise<void> = this.target.writeAt(buf.subarray(0, len), guest).then(
      () => { this.inflight.delete(p); release(); },
      (e: Error) => { this.failure ??= e; this.inflight.delete(p); release(); },
    );
    this.inflight.add(p);
  }

  /** Zeroes guest [start, end): the part in the held-back head is zero in memory already. */
  async zero(start: number, end: number): Promise<void> {
    await this.turn;
    if (this.failure) throw this.failure;
    await this.prepare();
    this.zeroBytes += end - start;
    this.onBytes?.(end - start);
    const from = Math.max(start, HOLD_BACK);
    if (from < end) await this.target.zeroRange(from, end - from);
  }

  /** All data writes done and on stable storage (not the head: commit()). */
  async finish(length: number): Promise<void> {
    await this.turn;
    await this.flushBlock();
    await this.drain();
    if (this.failure) throw this.failure;
    await this.prepare();
    await this.target.ensureLength(length);
    await this.target.sync();
  }

  private async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  /** After verification: the boot area, synced; then BLKRRPART (returns why not, if not). */
  async commit(length: number): Promise<string | undefined> {
    const n = Math.min(HOLD_BACK, length);
    await this.target.writeAt(this.head.subarray(0, n), 0);
    await this.target.sync();
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
