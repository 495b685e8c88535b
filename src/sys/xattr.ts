// Extended attributes (xattr(7)): Node has no API for them, so they go through the koffi door.
// Names and paths are passed as bytes (a Buffer, NUL-terminated here), never re-encoded: the
// rootfs extractor hands over the exact bytes a tarball recorded, and a security.capability
// value is binary. Every call is the l*/f* form: a symlink is never followed.
import os from 'node:os';
import { check, cString, errno, fn, shown, sysError } from './libc.ts';

const { ENODATA, ERANGE } = os.constants.errno;

type PathArg = string | Buffer;

type LsetxattrFn = (path: Buffer, name: Buffer, value: Buffer, size: number, flags: number) => number;
type FsetxattrFn = (fd: number, name: Buffer, value: Buffer, size: number, flags: number) => number;
type LgetxattrFn = (path: Buffer, name: Buffer, value: Buffer | null, size: number) => number;
type LlistxattrFn = (path: Buffer, list: Buffer | null, size: number) => number;

/** lsetxattr(2): set NAME on PATH itself (a symlink's own attribute, never its target's). */
export function lsetxattr(path: PathArg, name: PathArg, value: Buffer): void {
  const f = fn<LsetxattrFn>('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)');
  check(f(cString(path), cString(name), value, value.length, 0), `lsetxattr(${shown(path)}, ${shown(name)})`);
}

/** fsetxattr(2): set NAME on the open file FD. */
export function fsetxattr(fd: number, name: PathArg, value: Buffer, what = `fd ${fd}`): void {
  const f = fn<FsetxattrFn>('int fsetxattr(int fd, const char *name, const void *value, size_t size, int flags)');
  check(f(fd, cString(name), value, value.length, 0), `fsetxattr(${what}, ${shown(name)})`);
}

/** lgetxattr(2): the value's exact bytes, or undefined when PATH has no attribute NAME. */
export function lgetxattr(path: PathArg, name: PathArg): Buffer | undefined {
  const f = fn<LgetxattrFn>('intptr_t lgetxattr(const char *path, const char *name, _Out_ void *value, size_t size)');
  const p = cString(path);
  const n = cString(name);
  const what = `lgetxattr(${shown(path)}, ${shown(name)})`;
  // Ask for the size, then read; ask again if the value grew in between (ERANGE).
  for (;;) {
    const size = f(p, n, null, 0);
    if (size < 0) {
      const err = errno();
      if (err === ENODATA) return undefined;
      throw sysError(what, err);
    }
    const buf = Buffer.alloc(size);
    const got = f(p, n, buf, size);
    if (got >= 0) return buf.subarray(0, got);
    const err = errno();
    if (err !== ERANGE) throw sysError(what, err);
  }
}

/** llistxattr(2): the attribute names of PATH itself, as bytes. */
export function llistxattr(path: PathArg): Buffer[] {
  const f = fn<LlistxattrFn>('intptr_t llistxattr(const char *path, _Out_ char *list, size_t size)');
  const p = cString(path);
  const what = `llistxattr(${shown(path)})`;
  for (;;) {
    const size = check(f(p, null, 0), what);
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = f(p, buf, size);
    if (got < 0) {
      const err = errno();
      if (err === ERANGE) continue;
      throw sysError(what, err);
    }
    const names: Buffer[] = [];
    let start = 0;
    for (let i = 0; i < got; i++) {
      if (buf[i] === 0) { names.push(buf.subarray(start, i)); start = i + 1; }
    }
    return names;
  }
}
