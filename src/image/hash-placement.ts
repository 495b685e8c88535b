// Where a stream's sha256 runs (sha256-thread.ts can move it at any chunk): on the main thread,
// or on a thread of libuv's pool. Moving it costs the main thread a copy of every chunk and the
// machine a thread hop, and frees the main thread of the hash. That pays only when the main
// thread is what the stream waits for: on a real CPU with SHA instructions it is idle most of a
// deploy (the decoder is the bottleneck) and the hash stays where it is, costing no copy; under
// an emulator, hashing, HTTP and write submission keep it busy all the time and the pool's thread
// runs on a CPU the decoder leaves free. So it is decided by the main thread's measured event
// loop utilization, window by window, with a gap between the two thresholds so that the drop
// the move itself causes does not move it back. One CPU has nowhere else to run it.
import os from 'node:os';
import type { EventLoopUtilization } from 'node:perf_hooks';

/** main thread busy at least this share of a window: the hash goes to the pool */
export const OFFLOAD_AT = 0.9;
/** main thread busy less than this share: the hash comes back */
export const RETURN_BELOW = 0.6;
export const WINDOW_MS = 500;

/** Whether the hash should run on the pool, given where it runs and the last window's load. */
export function placeHash(offloaded: boolean, mainBusy: number): boolean {
  return offloaded ? mainBusy >= RETURN_BELOW : mainBusy >= OFFLOAD_AT;
}

interface LoopClock { eventLoopUtilization(prev?: EventLoopUtilization): EventLoopUtilization }

/** Measures the main thread in windows and answers where the hash should run next. */
export class HashPlacer {
  private readonly clock: LoopClock;
  private start = -1;
  private elu: EventLoopUtilization | undefined;

  constructor(clock: LoopClock = performance) {
    this.clock = clock;
  }

  /** Whether a placer is worth having here: more than one CPU to run the hash on. */
  static useful(): boolean {
    return os.availableParallelism() > 1;
  }

  /** Called per chunk; a decision once a window is complete, else undefined. */
  tick(offloaded: boolean, now = performance.now()): boolean | undefined {
    if (this.start < 0 || now - this.start < WINDOW_MS) {
      if (this.start < 0) this.begin(now);
      return undefined;
    }
    const busy = this.clock.eventLoopUtilization(this.elu).utilization;
    this.begin(now);
    return placeHash(offloaded, busy);
  }

  private begin(now: number): void {
    this.start = now;
    this.elu = this.clock.eventLoopUtilization();
  }
}
