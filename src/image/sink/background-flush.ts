// Flushes the target while a deploy is still writing. Where the disk is itself backed by a page
// cache (a loop device over a file, a VM disk with a writeback cache: QEMU's cache=writeback, the
// virtual disks of most clouds), booty's O_DIRECT writes only reach that cache, and the deploy's
// final fdatasync then writes the whole image out while nothing else happens: on this project's
// 2-core machine, half a second of a 2 GiB deploy's 2.4 s (README, Performance). One flush at a
// time, started every `every` bytes written, overlaps that write-out with decoding, and the final
// fdatasync finds little left. A flush that returns at once means nothing is buffered beneath
// (a disk that acknowledges writes only once they are safe, or one with power-loss protection):
// after `quickFlushes` of those in a row the flushes stop, since there is nothing to overlap and
// drives whose cache flushes do cost something should not pay them for nothing.
// Ordering and durability are unchanged: the writes stay O_DIRECT, the held-back first MiB is
// still written last, and the deploy still ends with its own fdatasync after every write.

/** Bytes written between two background flushes (the interval measured fastest: README). */
export const FLUSH_EVERY = 32 << 20;
/** A flush this fast found nothing buffered beneath the disk. */
const QUICK_FLUSH_MS = 5;

export interface BackgroundFlushOptions {
  /** bytes between flushes; 0 turns background flushes off */
  every?: number;
  /** quick flushes in a row after which no more are started (default 2) */
  quickFlushes?: number;
  /** for tests: the clock */
  now?: () => number;
}

export class BackgroundFlush {
  /** flushes started */
  flushes = 0;
  /** milliseconds the flushes took in all */
  flushMs = 0;
  /** true once quick flushes stopped them */
  stopped = false;
  private readonly every: number;
  private readonly quickLimit: number;
  private readonly now: () => number;
  private unflushed = 0;
  private quickInARow = 0;
  private inFlight: Promise<void> | undefined;
  private error: Error | undefined;
  private readonly sync: () => Promise<void>;

  constructor(sync: () => Promise<void>, opts: BackgroundFlushOptions = {}) {
    this.sync = sync;
    this.every = opts.every ?? FLUSH_EVERY;
    this.quickLimit = opts.quickFlushes ?? 2;
    this.now = opts.now ?? (() => performance.now());
    if (this.every <= 0) this.stopped = true;
  }

  /** The error of a failed background flush (the writer fails the deploy with it). */
  get failure(): Error | undefined { return this.error; }

  /** `n` bytes reached the target: starts a flush when `every` bytes gathered and none is running. */
  wrote(n: number): void {
    if (this.stopped || this.error !== undefined) return;
    this.unflushed += n;
    if (this.unflushed < this.every || this.inFlight !== undefined) return;
    this.unflushed = 0;
    this.flushes++;
    const started = this.now();
    this.inFlight = this.sync().then(() => {
      const ms = this.now() - started;
      this.flushMs += ms;
      this.quickInARow = ms < QUICK_FLUSH_MS ? this.quickInARow + 1 : 0;
      if (this.quickInARow >= this.quickLimit) this.stopped = true;
    }, (e: Error) => { this.error = e; }).finally(() => { this.inFlight = undefined; });
  }

  /** Waits for the flush in flight, if any (never rejects: `failure` says whether it failed). */
  async settle(): Promise<void> {
    await this.inFlight;
  }

  /** For the deploy's log: what the flushes did. */
  describe(): string {
    if (this.flushes === 0) return this.every <= 0 ? 'background flushes off' : 'no background flush';
    return `${this.flushes} background flush${this.flushes === 1 ? '' : 'es'} (${(this.flushMs / 1000).toFixed(1)} s${this.stopped ? '; stopped: nothing buffered beneath the disk' : ''})`;
  }
}
