// finit_module(2): load a kernel module from an open .ko file. glibc has no wrapper, so it goes
// through syscall(2). Debian ships uncompressed .ko files, which the kernel accepts as they are.
import fs from 'node:fs';
import { fn, errno, sysError } from './libc.ts';

const SYS_finit_module = 313; // x86_64

type SyscallFn = (nr: number, ...typedArgs: unknown[]) => number | bigint;

export type LoadResult = 'loaded' | 'already-loaded';

/**
 * Loads the module at `path` with the given parameters (`key=value key2=value2`).
 * EEXIST (a module of that name is already in the kernel) is not an error.
 */
export function finitModule(path: string, params = ''): LoadResult {
  const fd = fs.openSync(path, 'r');
  try {
    const sys = fn<SyscallFn>('long syscall(long nr, ...)');
    const ret = Number(sys(SYS_finit_module, 'int', fd, 'const char *', params, 'int', 0));
    if (ret === 0) return 'loaded';
    const err = errno();
    if (err === 17 /* EEXIST */) return 'already-loaded';
    throw sysError(`finit_module(${path})`, err);
  } finally {
    fs.closeSync(fd);
  }
}
