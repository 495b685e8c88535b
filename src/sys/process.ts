// Process-level calls PID 1 needs and Node lacks: reaping one specific child with waitpid(2),
// and prctl(PR_SET_CHILD_SUBREAPER), which lets a test process stand in for PID 1 (orphans of
// its descendants are then reparented to it, as they are to init).
import { check, fn } from './libc.ts';

const WNOHANG = 1;
const PR_SET_CHILD_SUBREAPER = 36;

type WaitpidFn = (pid: number, status: null, options: number) => number;
type PrctlFn = (option: number, ...typedArgs: unknown[]) => number;

/**
 * Reaps child `pid` if it has exited. Returns true when it was reaped, false when it is still
 * running or is not our child (ECHILD). Never waits.
 */
export function reapIfExited(pid: number): boolean {
  const waitpid = fn<WaitpidFn>('int waitpid(int pid, int *status, int options)');
  const ret = waitpid(pid, null, WNOHANG);
  return ret === pid;
}

/** Makes this process adopt orphaned descendants, like PID 1 does (for tests). */
export function becomeChildSubreaper(): void {
  const prctl = fn<PrctlFn>('int prctl(int option, ...)');
  check(prctl(PR_SET_CHILD_SUBREAPER, 'unsigned long', 1, 'unsigned long', 0, 'unsigned long', 0, 'unsigned long', 0), 'prctl(PR_SET_CHILD_SUBREAPER)');
}

const M_MMAP_THRESHOLD = -3;
/** allocations from 64 KiB up (a socket's read buffers, stream chunks) get their own mapping,
 *  unmapped when freed */
const MMAP_THRESHOLD = 64 << 10;

/**
 * Keeps glibc from holding on to freed buffer memory. By default glibc raises its mmap threshold
 * (128 KiB) up to 32 MiB once a large block is freed, after which the buffers a deploy or capture
 * streams through come from the heap, and their memory stays with the process once freed (12-20
 * MiB of RSS measured on a 4 GiB deploy). Setting the threshold (mallopt M_MMAP_THRESHOLD) turns
 * that adjustment off, and at 64 KiB the network's 64 KiB read buffers are mapped and unmapped
 * too (another 3-5 MiB; ~9000 mmap/munmap per GB, a few tens of ms). Returns false where mallopt
 * is unavailable (not glibc); nothing else changes then.
 */
export function keepMallocThresholdFixed(): boolean {
  if (mallocFixed !== undefined) return mallocFixed;
  try {
    const mallopt = fn<(param: number, value: number) => number>('int mallopt(int param, int value)');
    mallocFixed = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) === 1;
  } catch {
    mallocFixed = false;
  }
  return mallocFixed;
}
let mallocFixed: boolean | undefined;
