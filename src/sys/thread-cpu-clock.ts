// The calling thread's CPU time, from clock_gettime(CLOCK_THREAD_CPUTIME_ID) through koffi. Node
// has process.threadCpuUsage(), but it is getrusage(RUSAGE_THREAD), which reads the scheduler's
// sum without the slice the thread is running now: it moves by whole ticks (4 ms here).
// clock_gettime adds that slice (task_sched_runtime), so it times a 10 ms decode to the
// microsecond. Used by worker threads, so koffi comes by the path the main thread resolved
// (native-codec-worker.ts).
import { requireKoffi } from './native-codec-worker.ts';

/** <linux/time.h> */
const CLOCK_THREAD_CPUTIME_ID = 3;

/** Milliseconds of CPU the calling thread has used, or undefined where koffi or libc do not load. */
export function threadCpuClock(koffiPath: string): (() => number) | undefined {
  try {
    const k = requireKoffi(koffiPath);
    const clockGettime = k.load('libc.so.6').func('int clock_gettime(int clk, void *ts)');
    // struct timespec on x86-64: tv_sec and tv_nsec, 8 bytes each
    const ts = Buffer.alloc(16);
    const read = () => {
      if (clockGettime(CLOCK_THREAD_CPUTIME_ID, ts) !== 0) throw new Error('clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed');
      return Number(ts.readBigInt64LE(0)) * 1e3 + Number(ts.readBigInt64LE(8)) / 1e6;
    };
    read();
    return read;
  } catch {
    return undefined;
  }
}
