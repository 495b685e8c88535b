// glibc's malloc gives threads arenas of their own (node's libuv pool and V8's helper threads
// get theirs at startup, before any JavaScript runs, so mallopt(M_ARENA_MAX) comes too late)
// and keeps the pages of what was freed in them. During a deploy or capture those freed pages
// were megabytes of peak RSS (README, Performance, Memory). malloc_trim(0) gives the free pages
// of every arena back to the kernel; a few times a second costs nothing measurable.
import { fn } from './libc.ts';

/** Calls malloc_trim(0) every `intervalMs` until the returned stop() (best effort: without
 *  glibc or koffi it does nothing). The timer never keeps the process alive. */
export function trimMallocWhileRunning(intervalMs = 200): () => void {
  let trim: (pad: number) => number;
  try {
    trim = fn<(pad: number) => number>('int malloc_trim(size_t pad)');
  } catch {
    return () => {};
  }
  const timer = setInterval(() => { trim(0); }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

const M_MMAP_THRESHOLD = -3;

/** Makes glibc's malloc serve every allocation of `bytes` or more with its own mmap (returned to
 *  the kernel on free) for the rest of the process, instead of its default, which raises the
 *  threshold to the largest block freed so far: the block decoders' multi-MiB buffers (liblzma's
 *  dictionary per block, output parts moved between threads) then stayed in the arenas. Best
 *  effort: false without glibc or koffi. */
export function mmapLargeAllocations(bytes = 256 << 10): boolean {
  try {
    return fn<(param: number, value: number) => number>('int mallopt(int param, int value)')(M_MMAP_THRESHOLD, bytes) === 1;
  } catch {
    return false;
  }
}
