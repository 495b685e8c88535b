// Loading kernel modules. glibc has no wrappers for finit_module(2)/init_module(2), so both go
// through syscall(2).
//
// The initramfs ships its modules zstd-compressed (.ko.zst: 19 MB less to unpack into RAM). The
// Debian 6.1 kernel cannot decompress modules itself (no CONFIG_MODULE_DECOMPRESS), so a
// compressed module is inflated here and handed to init_module(2) from memory; a plain .ko goes
// to finit_module(2) as an open file.
import fs from 'node:fs';
import zlib from 'node:zlib';
import { fn, errno, sysError } from './libc.ts';

const SYS_init_module = 175; // x86_64
const SYS_finit_module = 313; // x86_64

type SyscallFn = (nr: number, ...typedArgs: unknown[]) => number | bigint;

export type LoadResult = 'loaded' | 'already-loaded';

/** How a module file is stored, by its name: `.ko`, `.ko.zst`, `.ko.gz` (and `.ko.xz`, refused). */
export function moduleCompression(path: string): 'none' | 'zstd' | 'gzip' | 'xz' {
  if (path.endsWith('.zst')) return 'zstd';
  if (path.endsWith('.gz')) return 'gzip';
  if (path.endsWith('.xz')) return 'xz';
  return 'none';
}

/** The module image of a (possibly compressed) module file's bytes. */
export function moduleImage(path: string, bytes: Buffer): Buffer {
  switch (moduleCompression(path)) {
    case 'zstd': return zlib.zstdDecompressSync(bytes);
    case 'gzip': return zlib.gunzipSync(bytes);
    case 'xz': throw new Error(`${path}: xz-compressed modules are not supported here (Node has no xz); pack them as .ko.zst`);
    case 'none': return bytes;
  }
}

function result(ret: number | bigint, what: string): LoadResult {
  if (Number(ret) === 0) return 'loaded';
  const err = errno();
  if (err === 17 /* EEXIST */) return 'already-loaded';
  throw sysError(what, err);
}

/**
 * Loads the module at `path` with the given parameters (`key=value key2=value2`), inflating
 * .ko.zst/.ko.gz first. EEXIST (a module of that name is already in the kernel) is not an error.
 */
export function loadModuleFile(path: string, params = ''): LoadResult {
  const sys = fn<SyscallFn>('long syscall(long nr, ...)');
  if (moduleCompression(path) !== 'none') {
    const image = moduleImage(path, fs.readFileSync(path));
    return result(sys(SYS_init_module, 'void *', image, 'unsigned long', image.length, 'const char *', params), `init_module(${path})`);
  }
  const fd = fs.openSync(path, 'r');
  try {
    return result(sys(SYS_finit_module, 'int', fd, 'const char *', params, 'int', 0), `finit_module(${path})`);
  } finally {
    fs.closeSync(fd);
  }
}
