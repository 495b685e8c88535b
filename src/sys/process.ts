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
